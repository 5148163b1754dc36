"""Early-exit MobileNetV2 models.

``spec`` is torch-free (the cost model reads it); the builders live in ``backbone`` and
``heads`` and are composed by ``early_exit``.
"""
