"""``flask --app wsgi …`` commands. Each module adds one command or group."""

from __future__ import annotations

import importlib

from flask import Flask

COMMAND_MODULES = [
    "app.cli.audit",
    "app.cli.worker",
    "app.cli.users",
    "app.cli.sources",
    "app.cli.items",
    "app.cli.banks",
    "app.cli.demo",
    "app.cli.exchanges",
]


def init_cli(app: Flask) -> None:
    """Register every command group on the app."""
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        app.cli.add_command(module.command)
