"""Plugin settings: switch plugins on and off, check and store their settings, test connections.

Settings are validated against what the plugin declares (``Setting``), never against a
plugin-specific form. Secret values are write-only: they are stored as one Fernet token
(``app.services.crypto``) and only ever decrypted to hand them to the plugin; the admin sees
"set" or "not set". Every change is audited with the changed setting *names*, never values.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import g
from sqlalchemy import select

from app.extensions import db
from app.models.plugin import PluginConfig
from app.models.types import utcnow
from app.plugins import Action, ConnectionResult, Scanner, Setting, current_plugins
from app.services import audit
from app.services.audit import Actor
from app.services.crypto import InvalidToken, decrypt, encrypt
from app.services.deadline import DeadlineExceeded, call_with_deadline
from app.services.scanning import mask_secrets, secrets_of

log = logging.getLogger(__name__)

MAX_TEXT = {"string": 2000, "url": 2048, "multiline": 20000, "choice": 200}


class SettingsError(Exception):
    """Settings that do not validate: ``errors`` maps setting names ("" the form) to messages."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" if k else v for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class PluginStatus:
    """A plugin as the admin pages show it: on or off, configured, current values, last test."""

    plugin: Scanner | Action
    enabled: bool
    missing: list[str]  # titles of required settings without a value
    values: dict[str, Any]  # non-secret values in force (stored, else the default)
    secrets_set: dict[str, bool]
    last_test_ok: bool | None
    last_test_message: str | None
    last_test_at: datetime | None

    @property
    def configured(self) -> bool:
        """True when every required setting has a value."""
        return not self.missing


def plugin_statuses() -> list[PluginStatus]:
    """Every installed scanner and action, in the order the admin page lists them."""
    configs = _configs()
    return [_status(plugin, configs.get(plugin.name)) for plugin in current_plugins().all()]


def plugin_status(name: str) -> PluginStatus | None:
    """The status of the plugin called ``name``, or None when no such plugin is installed."""
    plugin = current_plugins().get(name)
    return _status(plugin, db.session.get(PluginConfig, name)) if plugin else None


def switched_on_scanners(*, fast_only: bool = False) -> list[Scanner]:
    """The scanners that are switched on (by an admin, or by default), by name, in one query."""
    return [scanner for scanner, _ in _switched_on(fast_only)]


def enabled_scanners(*, fast_only: bool = False) -> list[tuple[Scanner, dict[str, Any]]]:
    """The switched-on scanners with their settings (secrets decrypted), in one query."""
    return [
        (scanner, effective_settings(scanner, config))
        for scanner, config in _switched_on(fast_only)
    ]


def _switched_on(fast_only: bool) -> list[tuple[Scanner, StoredConfig | None]]:
    configs = _stored_configs()
    chosen = []
    for scanner in sorted(current_plugins().scanners.values(), key=lambda s: s.name):
        config = configs.get(scanner.name)
        on = config.enabled if config is not None else scanner.enabled_by_default
        if on and (scanner.fast or not fast_only):
            chosen.append((scanner, config))
    return chosen


def effective_settings(
    plugin: Scanner | Action, config: PluginConfig | StoredConfig | None
) -> dict[str, Any]:
    """The values a plugin runs with: stored ones, defaults for the rest, secrets decrypted."""
    values = dict(config.settings or {}) if config else {}
    return _merged(plugin, values, _secrets(config))


def settings_for(plugin: Scanner | Action) -> dict[str, Any]:
    """effective_settings of the plugin's stored configuration (read once per request or job)."""
    return effective_settings(plugin, _stored_configs().get(plugin.name))


def save_settings(
    name: str,
    submitted: Mapping[str, str | None],
    clear: set[str],
    actor: Actor,
    user_id: int | None = None,
) -> list[str]:
    """Validate and store a settings form; return the changed names (audited). Raises SettingsError.

    ``submitted`` maps setting names to the text typed (None: field absent, an unticked box). An
    empty secret keeps the stored one; a name in ``clear`` removes it.
    """
    plugin, config = _plugin_and_config(name)
    values, secrets = _validated(plugin, submitted, clear, config)
    old_values, old_secrets = dict(config.settings or {}), _secrets(config)
    changed = sorted(
        {k for k in values if values[k] != old_values.get(k)}
        | {k for k in set(secrets) | set(old_secrets) if secrets.get(k) != old_secrets.get(k)}
    )
    if changed:
        config.settings = values
        config.secrets_encrypted = encrypt(json.dumps(secrets)) if secrets else None
        config.updated_by_id = user_id
        audit.record(
            "plugin.settings_changed",
            actor,
            target_type="plugin",
            target_id=name,
            details={"changed": changed},
        )
    db.session.commit()
    _forget_stored_configs()
    return changed


def set_enabled(name: str, enabled: bool, actor: Actor, user_id: int | None = None) -> None:
    """Switch a plugin on or off (audited); it cannot be switched on before it is configured."""
    plugin, config = _plugin_and_config(name)
    if enabled:
        missing = _status(plugin, config).missing
        if missing:
            raise SettingsError(
                {
                    "": f"Fill in {', '.join(missing)} before switching "
                    f"{plugin.title or plugin.name} on."
                }
            )
    if config.enabled != enabled:
        config.enabled, config.updated_by_id = enabled, user_id
        audit.record(
            "plugin.enabled",
            actor,
            target_type="plugin",
            target_id=name,
            details={"enabled": enabled},
        )
    db.session.commit()
    _forget_stored_configs()


def test_connection(
    name: str, submitted: Mapping[str, str | None] | None, clear: set[str], actor: Actor
) -> ConnectionResult:
    """Run the plugin's connection test with the form's (or the stored) values; keep the result.

    Raises SettingsError when the form does not validate.
    """
    plugin, config = _plugin_and_config(name)
    if submitted is None:
        settings = effective_settings(plugin, config)
    else:
        settings = _merged(plugin, *_validated(plugin, submitted, clear, config))
    try:
        result = call_with_deadline(plugin.test_connection, plugin.timeout, settings)
    except DeadlineExceeded:
        result = ConnectionResult(False, f"No answer within {plugin.timeout:g} seconds.")
    except Exception as error:  # the admin needs the reason, not a 500
        result = ConnectionResult(False, f"{type(error).__name__}: {error}")
    message = mask_secrets(str(result.message), secrets_of(plugin, settings))[:1000]
    result = ConnectionResult(bool(result.ok), message)
    config.last_test_ok, config.last_test_message = result.ok, message
    config.last_test_at = utcnow()
    audit.record(
        "plugin.connection_tested",
        actor,
        target_type="plugin",
        target_id=name,
        details={"ok": result.ok},
    )
    db.session.commit()
    _forget_stored_configs()
    return result


def parse_value(setting: Setting, raw: str | None) -> Any:
    """The typed value of one field's text; raises ValueError with a message saying what to fix."""
    if setting.type == "boolean":
        return (raw or "").strip().lower() not in ("", "0", "false", "off", "no")
    text = (raw or "").strip()
    if not text:
        if setting.required:
            raise ValueError(f"{setting.title} is required.")
        return None
    if len(text) > MAX_TEXT.get(setting.type, 100):
        raise ValueError(f"{setting.title} is too long.")
    if setting.type in ("integer", "number"):
        return _number(setting, text)
    if setting.type == "choice" and text not in setting.choice_values():
        raise ValueError(f"Choose one of: {', '.join(setting.choice_values())}.")
    if setting.type == "url":
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname or " " in text:
            raise ValueError(
                "Enter an http:// or https:// address, such as https://api.example.com/v1."
            )
    return text


def _number(setting: Setting, text: str) -> int | float:
    try:
        value: int | float = int(text) if setting.type == "integer" else float(text)
    except ValueError:
        kind = "a whole number" if setting.type == "integer" else "a number"
        raise ValueError(f"Enter {kind}, such as 10.") from None
    if not math.isfinite(value):
        raise ValueError("Enter a finite number.")
    low, high = setting.min, setting.max
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (
            f"from {low:g} to {high:g}"
            if low is not None and high is not None
            else f"of at least {low:g}"
            if low is not None
            else f"of at most {high:g}"
        )
        raise ValueError(f"Enter a number {bounds}.")
    return value


def _validated(
    plugin: Scanner | Action,
    submitted: Mapping[str, str | None],
    clear: set[str],
    config: PluginConfig,
) -> tuple[dict[str, Any], dict[str, Any]]:
    values: dict[str, Any] = {}
    secrets = _secrets(config)
    errors: dict[str, str] = {}
    for setting in plugin.settings:
        raw = submitted.get(setting.name)
        try:
            if setting.secret:
                if setting.name in clear:
                    secrets.pop(setting.name, None)
                if (raw or "").strip():
                    secrets[setting.name] = parse_value(setting, raw)
                elif setting.required and setting.name not in secrets:
                    raise ValueError(f"{setting.title} is required.")
            else:
                values[setting.name] = parse_value(setting, raw)
        except ValueError as error:
            errors[setting.name] = str(error)
    if errors:
        raise SettingsError(errors)
    return values, secrets


def _status(plugin: Scanner | Action, config: PluginConfig | None) -> PluginStatus:
    stored = dict(config.settings or {}) if config else {}
    secret_names = set(_secrets(config)) if config and config.secrets_encrypted else set()
    values = {
        s.name: stored[s.name] if stored.get(s.name) is not None else s.default
        for s in plugin.settings
        if not s.secret
    }
    missing = [
        s.title
        for s in plugin.settings
        if s.required and (s.name not in secret_names if s.secret else values[s.name] in (None, ""))
    ]
    return PluginStatus(
        plugin=plugin,
        enabled=config.enabled if config else plugin.enabled_by_default,
        missing=missing,
        values=values,
        secrets_set={s.name: s.name in secret_names for s in plugin.settings if s.secret},
        last_test_ok=config.last_test_ok if config else None,
        last_test_message=config.last_test_message if config else None,
        last_test_at=config.last_test_at if config else None,
    )


def _plugin_and_config(name: str) -> tuple[Scanner | Action, PluginConfig]:
    plugin = current_plugins().get(name)
    if plugin is None:
        raise LookupError(f"no plugin called {name!r} is installed")
    config = db.session.get(PluginConfig, name)
    if config is None:
        config = PluginConfig(
            name=name, kind=plugin.kind, enabled=plugin.enabled_by_default, settings={}
        )
        db.session.add(config)
    return plugin, config


def _configs() -> dict[str, PluginConfig]:
    return {c.name: c for c in db.session.scalars(select(PluginConfig))}


@dataclass(frozen=True)
class StoredConfig:
    """What a scan needs of a plugin's stored configuration, read once per app context."""

    name: str
    enabled: bool
    settings: dict[str, Any] | None
    secrets_encrypted: str | None


_CONFIGS_KEY = "modtools_plugin_configs"
_CONFIG_ROWS = select(  # built once: every job reads it
    PluginConfig.name, PluginConfig.enabled, PluginConfig.settings, PluginConfig.secrets_encrypted
)


def _stored_configs() -> dict[str, StoredConfig]:
    """Every plugin's stored configuration, read once per request or job (one SELECT).

    A job asks several times (which scanners run, their settings, the round's routing); the
    answer cannot change under it except through this module, which forgets it on every change.
    """
    found = g.get(_CONFIGS_KEY)
    if found is None:
        rows = db.session.execute(_CONFIG_ROWS)
        found = {row.name: StoredConfig(*row) for row in rows}
        g.setdefault(_CONFIGS_KEY, found)
    return found


def _forget_stored_configs() -> None:
    g.pop(_CONFIGS_KEY, None)


def _secrets(config: PluginConfig | StoredConfig | None) -> dict[str, Any]:
    if config is None or not config.secrets_encrypted:
        return {}
    try:
        return dict(json.loads(decrypt(config.secrets_encrypted)))
    except InvalidToken:
        # The instance key changed (restored without its key file): the secrets are lost.
        log.error(
            "the secrets of plugin %s cannot be decrypted with this instance's key; "
            "enter them again",
            config.name,
        )
        return {}


def _merged(
    plugin: Scanner | Action, values: dict[str, Any], secrets: dict[str, Any]
) -> dict[str, Any]:
    given = {**values, **secrets}
    return {
        s.name: given[s.name] if given.get(s.name) is not None else s.default
        for s in plugin.settings
    }
