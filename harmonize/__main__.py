"""``python -m harmonize`` runs the CLI."""

from harmonize.cli import main

main()
