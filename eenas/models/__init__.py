"""The backbone families and their early-exit networks.

``spec`` modules are torch-free (the cost model reads them) and register their family in
``registry`` as they are imported, here, so every user of the registry sees all of them; the
PyTorch builders live in ``backbone``, ``paper_mbv2``, ``resnet`` and ``heads`` and are
composed by ``early_exit``.
"""

from eenas.models import paper_mbv2_spec, resnet_spec, spec  # noqa: F401  (each registers its family)
