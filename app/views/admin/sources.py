"""Admin pages for sources: list, create, edit, switch on and off, tokens and webhook secrets.

A new token or secret is rendered once, in the response to the POST that made it, and never
again: pages only ever show a token's prefix. Every form works without JavaScript; with htmx,
revoking a token swaps just its row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import abort, current_app, flash, render_template, request, url_for
from sqlalchemy import select

from app.extensions import db
from app.htmx import is_htmx, redirect
from app.models.source import ApiToken, Source, SourceKind
from app.models.user import Role
from app.security import role_required
from app.services import source_secrets, sources
from app.services.sources import SourceError
from app.views import request_actor
from app.views.admin import bp

KIND_CHOICES = [kind.value for kind in SourceKind if kind is not SourceKind.MANUAL]


def _source_or_404(slug: str) -> Source:
    source = db.session.scalar(select(Source).where(Source.slug == slug))
    if source is None:
        abort(404)
    return source


def _shown_once(source: Source, title: str, **secrets: Any) -> str:
    """The page that shows a new token and/or secret: the only time they are ever rendered."""
    base_url = (current_app.config.get("PUBLIC_URL") or request.host_url).rstrip("/")
    return render_template(
        "admin/sources_once.html", source=source, title=title, base_url=base_url, **secrets
    )


@bp.get("/sources", endpoint="sources")
@role_required(Role.ADMIN)
def sources_list():
    """Every source with its kind, state and counts."""
    return render_template("admin/sources.html", rows=sources.list_sources())


@bp.route("/sources/new", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def new_source():
    """The new-source form; on success, the credentials page (shown once)."""
    form = {"name": "", "kind": SourceKind.GENERIC.value, "callback_url": ""}
    errors: dict[str, str] = {}
    if request.method == "POST":
        form = {key: request.form.get(key, "").strip() for key in form}
        errors = _field_errors(
            name=lambda: sources.check_name(form["name"]),
            kind=lambda: sources.check_kind(form["kind"]),
            callback_url=lambda: sources.check_callback_url(form["callback_url"]),
        )
        if not errors:
            try:
                source, token, secret = sources.create_source(
                    form["name"], form["kind"], request_actor(), callback_url=form["callback_url"]
                )
            except SourceError as error:
                errors[error.field or "name"] = error.message
            else:
                return _shown_once(
                    source,
                    "Source created",
                    token=token,
                    secret=secret,
                    pictrs_token=_pictrs_token(source),
                )
    page = render_template("admin/sources_new.html", form=form, kinds=KIND_CHOICES, errors=errors)
    return page, 422 if errors else 200


@bp.route("/sources/<slug>", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def source_detail(slug: str):
    """A source's settings, state and tokens; POST saves the edit form."""
    source = _source_or_404(slug)
    form = {
        "name": source.name,
        "callback_url": source.callback_url or "",
        # Credentials are never rendered: they have their own write-only form.
        "settings": json.dumps(
            source_secrets.public_settings(source.settings), indent=2, ensure_ascii=False
        ),
    }
    errors: dict[str, str] = {}
    if request.method == "POST":
        form = {key: request.form.get(key, "") for key in form}
        # Every field is checked, so the admin sees all that needs fixing at once.
        errors = _field_errors(
            name=lambda: sources.check_name(form["name"]),
            callback_url=lambda: sources.check_callback_url(form["callback_url"]),
            settings=lambda: source_secrets.keep_secrets(source, _parse_settings(form["settings"])),
        )
        if not errors:
            sources.update_source(
                source,
                request_actor(),
                name=form["name"],
                callback_url=form["callback_url"],
                settings=source_secrets.keep_secrets(source, _parse_settings(form["settings"])),
            )
            flash("Source saved.", "success")
            return redirect(url_for("admin.source_detail", slug=source.slug))
    page = render_template(
        "admin/sources_detail.html",
        source=source,
        form=form,
        errors=errors,
        credential_names=source_secrets.names_for(source),
        credentials_set=source_secrets.secret_names(source),
    )
    return page, 422 if errors else 200


@bp.post("/sources/<slug>/credentials")
@role_required(Role.ADMIN)
def source_credentials(slug: str):
    """Save the platform credentials form: a filled field replaces, a ticked box clears."""
    source = _source_or_404(slug)
    names = source_secrets.names_for(source)
    values = {name: request.form.get(f"credential-{name}", "") for name in names}
    clear = {name for name in names if request.form.get(f"clear-{name}")}
    try:
        changed = source_secrets.save_secrets(source, values, clear, request_actor())
    except SourceError as error:
        flash(error.message, "error")
    else:
        saved = f"Credentials saved: {', '.join(changed)}." if changed else "Nothing changed."
        flash(saved, "success")
    return redirect(url_for("admin.source_detail", slug=source.slug))


def _field_errors(**checks: Callable[[], object]) -> dict[str, str]:
    """Run each field's check; the messages of those that refuse, by field name."""
    errors = {}
    for field, check in checks.items():
        try:
            check()
        except SourceError as error:
            errors[field] = error.message
    return errors


def _parse_settings(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise SourceError(
            f"Settings are not valid JSON ({error.msg} at line {error.lineno}, column "
            f'{error.colno}). Write an object such as {{"language": "en"}}, or leave it empty.',
            "settings",
        ) from None
    return sources.check_settings(value)


@bp.post("/sources/<slug>/enabled")
@role_required(Role.ADMIN)
def source_enabled(slug: str):
    """Switch a source on (``enabled=1``) or off (``enabled=0``)."""
    source = _source_or_404(slug)
    enabled = request.form.get("enabled") == "1"
    sources.set_enabled(source, enabled, request_actor())
    flash(
        "Source enabled: its tokens work again."
        if enabled
        else "Source disabled: requests with its tokens are refused until you enable it.",
        "success",
    )
    return redirect(url_for("admin.source_detail", slug=source.slug))


@bp.post("/sources/<slug>/tokens")
@role_required(Role.ADMIN)
def source_issue_token(slug: str):
    """Issue another API token; the response is the only place it is ever shown."""
    source = _source_or_404(slug)
    _, raw = sources.issue_token(source, request_actor(), request.form.get("name", ""))
    return _shown_once(source, "New API token", token=raw)


@bp.post("/sources/<slug>/tokens/<int:token_id>/revoke")
@role_required(Role.ADMIN)
def source_revoke_token(slug: str, token_id: int):
    """Revoke a token: htmx gets the updated row, a plain form goes back to the source page."""
    source = _source_or_404(slug)
    token = db.session.get(ApiToken, token_id)
    if token is None or token.source_id != source.id:
        abort(404)
    sources.revoke_token(token.id, request_actor())
    if is_htmx():
        return render_template("admin/_source_token.html", source=source, token=token)
    flash(f"Token {token.prefix}… revoked. Requests using it are refused from now on.", "success")
    return redirect(url_for("admin.source_detail", slug=source.slug))


@bp.post("/sources/<slug>/secret")
@role_required(Role.ADMIN)
def source_rotate_secret(slug: str):
    """Replace the webhook signing secret; the response shows the new one, once."""
    source = _source_or_404(slug)
    secret = sources.rotate_webhook_secret(source, request_actor())
    return _shown_once(
        source, "New webhook signing secret", secret=secret, pictrs_token=_pictrs_token(source)
    )


def _pictrs_token(source: Source) -> str | None:
    """A new pict-rs validation path token for a pict-rs source (shown once), else None."""
    from app.services.webhooks.pictrs import issue_path_token_if_pictrs

    return issue_path_token_if_pictrs(source, request_actor())
