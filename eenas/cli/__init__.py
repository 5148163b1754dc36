"""The ``eenas`` command line: one module per command family, shared options in ``options``.

Each command parses options, calls one library function and prints its tables; user errors
(:class:`~eenas.errors.EenasError`) become one line on stderr and exit code 2.
"""

from eenas.cli import cost, enos, search, study, train, weights  # noqa: F401  (each adds its commands to cli)
from eenas.cli.group import cli, main

__all__ = ["cli", "main"]
