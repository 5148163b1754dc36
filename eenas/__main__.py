"""``python -m eenas`` runs the CLI."""

from eenas.cli import main

main()
