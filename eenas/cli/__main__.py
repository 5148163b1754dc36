"""``python -m eenas.cli`` runs the CLI, as ``python -m eenas`` does."""

from eenas.cli import main

main()
