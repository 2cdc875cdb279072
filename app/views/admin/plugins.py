"""``/admin/plugins``: installed scanners and actions, switched on and off and configured.

The settings form is rendered from what each plugin declares (``Setting``), never from a
plugin-specific template. Secret fields are write-only: the page says "set" or "not set", the
input is always empty, an empty input keeps the stored value and "Remove" clears it.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, render_template, request, url_for
from flask_login import current_user

from app import htmx
from app.models.user import Role
from app.plugins import current_plugins
from app.security import role_required
from app.services import plugin_settings
from app.services.plugin_settings import PluginStatus, SettingsError
from app.views import request_actor
from app.views.admin import bp


def _status_or_404(name: str) -> PluginStatus:
    status = plugin_settings.plugin_status(name)
    if status is None:
        abort(404)
    return status


def _submitted(status: PluginStatus) -> tuple[dict[str, str | None], set[str]]:
    """The typed values and the secrets to remove, as the settings form posted them."""
    form = request.form
    values = {s.name: form.get(f"setting-{s.name}") for s in status.plugin.settings}
    clear = {s.name for s in status.plugin.settings if s.secret and form.get(f"clear-{s.name}")}
    return values, clear


def _form_page(
    status: PluginStatus,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    code: int = 200,
) -> Any:
    return render_template(
        "admin/plugin_settings.html",
        status=status,
        plugin=status.plugin,
        values=status.values if values is None else values,
        errors=errors or {},
    ), code


@bp.get("/plugins")
@role_required(Role.ADMIN)
def plugins() -> Any:
    """Every installed scanner and action: state, configuration, last connection test."""
    return render_template(
        "admin/plugins.html",
        statuses=plugin_settings.plugin_statuses(),
        skipped=current_plugins().skipped,
        allowed=current_app.config.get("PLUGINS_ALLOWED", []),
    )


@bp.get("/plugins/<name>")
@role_required(Role.ADMIN)
def plugin_settings_page(name: str) -> Any:
    """The plugin's settings form."""
    return _form_page(_status_or_404(name))


@bp.post("/plugins/<name>")
@role_required(Role.ADMIN)
def plugin_settings_save(name: str) -> Any:
    """Validate and store the settings; field errors re-render the form (422)."""
    status = _status_or_404(name)
    values, clear = _submitted(status)
    try:
        changed = plugin_settings.save_settings(
            name, values, clear, request_actor(), current_user.id
        )
    except SettingsError as error:
        return _form_page(status, values, error.errors, 422)
    flash(f"Saved: {', '.join(changed)} changed." if changed else "Nothing changed.", "success")
    return htmx.redirect(url_for("admin.plugin_settings_page", name=name))


@bp.post("/plugins/<name>/enabled")
@role_required(Role.ADMIN)
def plugin_enabled(name: str) -> Any:
    """Switch a plugin on (once it is configured) or off."""
    status = _status_or_404(name)
    enabled = request.form.get("enabled") == "1"
    title = status.plugin.title or name
    try:
        plugin_settings.set_enabled(name, enabled, request_actor(), current_user.id)
    except SettingsError as error:
        flash(error.errors.get("", str(error)), "error")
    else:
        flash(f"{title} is {'on' if enabled else 'off'}.", "success")
    back = request.form.get("back")
    target = (
        url_for("admin.plugin_settings_page", name=name)
        if back == "settings"
        else url_for("admin.plugins")
    )
    return htmx.redirect(target)


@bp.post("/plugins/<name>/test")
@role_required(Role.ADMIN)
def plugin_test(name: str) -> Any:
    """Test the connection with the form's (or the stored) values; htmx gets the result inline."""
    status = _status_or_404(name)
    values, clear = _submitted(status) if request.form.get("from_form") else (None, set())
    try:
        result = plugin_settings.test_connection(name, values, clear, request_actor())
    except SettingsError as error:
        if htmx.is_htmx():
            return render_template(
                "admin/_plugin_test_result.html", result=None, errors=error.errors
            )
        return _form_page(status, values, error.errors, 422)
    if htmx.is_htmx():
        return render_template("admin/_plugin_test_result.html", result=result, errors={})
    flash(
        ("Connection works: " if result.ok else "Connection failed: ") + result.message,
        "success" if result.ok else "error",
    )
    return htmx.redirect(url_for("admin.plugin_settings_page", name=name))
