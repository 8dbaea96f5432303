"""``python -m harmonize`` runs the CLI."""

from harmonize.cli.app import main

main()
