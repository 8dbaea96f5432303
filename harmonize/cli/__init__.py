"""The ``harmonize`` command line: one Typer app, a module of commands per area, console helpers."""

from harmonize.cli.app import app, main

__all__ = ["app", "main"]
