"""Plugins: the manager on the app, the ``Scanner`` and ``Action`` base classes, the registries.

Built-in plugins (``BUILTIN_PLUGINS``) and outside ones register through the same hooks
(``app.hookspecs``). Outside plugins are packages that declare an entry point in the
``modtools_image`` group; one is loaded only when its entry-point name is listed in the
``PLUGINS_ALLOWED`` setting, because a plugin runs with the app's full rights over the worst images
on the internet. ``PLUGINS_MODULES`` adds plugins by import path (a site's own, the tests').

The manager lives on the app (``app.extensions["modtools_plugins"]``), never in a module global.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy
from flask import Flask, current_app

from app import hookspecs
from app.hookspecs import hookimpl, hookspec
from app.plugin_types import (
    Action,
    ActionContext,
    ActionOutcome,
    ConnectionResult,
    PluginClass,
    ScanContext,
    Scanner,
    ScanOutcome,
    Setting,
    check_plugin_class,
)

__all__ = [
    "BUILTIN_PLUGINS",
    "Action",
    "ActionContext",
    "ActionOutcome",
    "ConnectionResult",
    "PluginError",
    "Plugins",
    "ScanContext",
    "ScanOutcome",
    "Scanner",
    "Setting",
    "current_plugins",
    "hookimpl",
    "hookspec",
    "init_plugins",
]

log = logging.getLogger(__name__)

BUILTIN_PLUGINS = [
    "plugins.hashbank",
    "plugins.photodna",
    "plugins.arachnid",
    "plugins.hma",
    "plugins.webhook",
    "plugins.quarantine",
    "plugins.add_to_bank",
    "plugins.email",
    "plugins.ncmec",
    "plugins.dsa",
    "plugins.nudenet",
    "plugins.hive",
    "plugins.google_vision",
    "plugins.aws_rekognition",
    "plugins.azure_content_safety",
    "plugins.sightengine",
    "plugins.platform_actions",
    "app.services.actions_hooks",
]
ENTRY_POINT_GROUP = "modtools_image"
EXTENSION_KEY = "modtools_plugins"


class PluginError(Exception):
    """A plugin that cannot be installed; the app refuses to start and says which and why."""


@dataclass
class Plugins:
    """The app's plugin manager and what its plugins registered, keyed by name."""

    manager: pluggy.PluginManager
    scanners: dict[str, Scanner] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # entry points not on the allow-list

    def get(self, name: str) -> Scanner | Action | None:
        """The scanner or action called ``name``, if installed."""
        return self.scanners.get(name) or self.actions.get(name)

    def all(self) -> list[Scanner | Action]:
        """Every installed scanner, then every action, each sorted by name."""
        return [
            *sorted(self.scanners.values(), key=lambda s: s.name),
            *sorted(self.actions.values(), key=lambda a: a.name),
        ]

    def fire(self, event: str, **kwargs: Any) -> None:
        """Call every plugin's ``event`` hook; a failing plugin is logged, the others still run."""
        for impl in getattr(self.manager.hook, event).get_hookimpls():
            try:
                impl.function(*(kwargs[name] for name in impl.argnames))
            except Exception:  # one plugin's bug must not stop the pipeline
                log.exception("plugin %s failed in %s", impl.plugin_name, event)


def init_plugins(app: Flask) -> Plugins:
    """Load the app's plugins once, check them, and keep them on the app. Raises PluginError."""
    existing = app.extensions.get(EXTENSION_KEY)
    if existing is not None:
        return existing
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    modules = [*BUILTIN_PLUGINS, *_as_list(app.config.get("PLUGINS_MODULES", []))]
    for module_name in modules:
        _register(manager, importlib.import_module(module_name), module_name)
    skipped = _load_entry_points(manager, set(_as_list(app.config.get("PLUGINS_ALLOWED", []))))
    try:
        manager.check_pending()  # a misspelt hook name fails here, not silently never called
    except pluggy.PluginValidationError as error:
        raise PluginError(f"plugin {error.plugin!r}: {error}") from None
    plugins = Plugins(manager, skipped=skipped)
    seen: dict[str, str] = {}
    for registered in _collect(manager.hook.register_scanners, Scanner, seen):
        plugins.scanners[registered.name] = registered  # type: ignore[assignment]
    for registered in _collect(manager.hook.register_actions, Action, seen):
        plugins.actions[registered.name] = registered  # type: ignore[assignment]
    return app.extensions.setdefault(EXTENSION_KEY, plugins)


def current_plugins() -> Plugins:
    """The current app's plugins (loaded on first use if ``create_app`` has not done so)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    return app.extensions.get(EXTENSION_KEY) or init_plugins(app)


def _as_list(value: Any) -> list[str]:
    # From the environment a list may arrive as "a, b" rather than JSON.
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part) for part in value or []]


def _register(manager: pluggy.PluginManager, module: Any, name: str) -> None:
    if manager.is_registered(module):
        return
    try:
        manager.register(module, name=name)
    except ValueError as error:
        raise PluginError(f"plugin {name!r} cannot be registered: {error}") from None


def _load_entry_points(manager: pluggy.PluginManager, allowed: set[str]) -> list[str]:
    """Register the allowed entry points of our group; return the names of the others."""
    skipped = []
    found = set()
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found.add(point.name)
        if point.name not in allowed:
            skipped.append(point.name)
            log.warning(
                "plugin %r (%s) is installed but not in PLUGINS_ALLOWED: not loaded",
                point.name,
                point.value,
            )
            continue
        try:
            module = point.load()
        except Exception as error:
            raise PluginError(
                f"plugin {point.name!r} ({point.value}) failed to import: "
                f"{type(error).__name__}: {error}"
            ) from error
        _register(manager, module, point.name)
        log.info("plugin %r loaded from %s", point.name, point.value)
    for missing in sorted(allowed - found):
        log.warning("PLUGINS_ALLOWED names %r, but no installed package provides it", missing)
    return sorted(skipped)


def _collect(hook: Any, base: type[PluginClass], seen: dict[str, str]) -> list[PluginClass]:
    """Instances of every class the plugins return from ``hook``; a name used twice is an error."""
    found = []
    for impl in hook.get_hookimpls():
        for cls in impl.function() or []:
            problem = check_plugin_class(cls, base)
            if problem:
                raise PluginError(f"plugin {impl.plugin_name!r}: {problem}")
            if cls.name in seen:
                raise PluginError(
                    f"two plugins provide a scanner or action named {cls.name!r}: "
                    f"{seen[cls.name]} and {impl.plugin_name}. Uninstall one, or remove one "
                    "from PLUGINS_ALLOWED."
                )
            seen[cls.name] = impl.plugin_name
            found.append(cls())
    return found
