"""The hooks a Modtools Image plugin can implement. Each one is documented in docs/plugins.md.

``register_*`` hooks return things: lists of classes the app installs at start-up. The others are
events, named after the moment they announce; they return nothing, and one plugin's exception is
logged without stopping the others or the work that fired the event. Events fire after the
change they announce is committed, in the thread that made it: keep them quick, and enqueue a
job for anything slow.
"""

from __future__ import annotations

from typing import Any

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("modtools_image")
hookimpl = HookimplMarker("modtools_image")


@hookspec
def register_scanners() -> list[type[Any]]:
    """Return a list of ``Scanner`` subclasses this plugin provides."""


@hookspec
def register_actions() -> list[type[Any]]:
    """Return a list of ``Action`` subclasses this plugin provides."""


@hookspec
def item_received(item: Any) -> None:
    """An item was accepted and stored, and is about to enter its first scan."""


@hookspec
def item_scanned(item: Any, results: list[Any]) -> None:
    """Every scanner of a scan round finished and the item was routed; ``results`` are its rows."""


@hookspec
def item_decided(item: Any, decision: Any) -> None:
    """A moderator (or a rule) decided the item; ``decision`` says what and why."""


@hookspec
def action_completed(item: Any, run: Any) -> None:
    """An action run for the item finished, successfully or for good; ``run`` is its record."""
