"""``/setup/<token>``: the one-time page that creates the first admin on an empty database.

The link is printed by the server at start (and kept in ``instance/setup-url.txt``). It answers
404 for any other token, once it has been used, and as soon as any account exists.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import login_user

from app.security import public
from app.services import accounts
from app.services import login as login_service
from app.services.accounts import AccountError
from app.views.auth.login import client_ip

bp = Blueprint("setup", __name__)


@bp.route("/setup/<token>", methods=["GET", "POST"])
@public
def first_admin(token: str) -> Any:
    """The form for the first admin's email, name and password."""
    if not accounts.setup_link_is_usable(token):
        abort(404)
    if request.method == "GET":
        return render_template("setup/first_admin.html", email="", display_name="")
    form = request.form
    try:
        user = accounts.create_first_admin(
            token,
            form.get("email", ""),
            form.get("display_name", ""),
            form.get("password", ""),
            form.get("password_again", ""),
            client_ip(),
            current_app.instance_path,
        )
    except AccountError as error:
        page = render_template(
            "setup/first_admin.html",
            error=error,
            email=form.get("email", ""),
            display_name=form.get("display_name", ""),
        )
        return page, 400
    if user is None:  # someone else used the link a moment ago
        abort(404)
    login_service.complete_login(user, client_ip())
    session.clear()
    login_user(user)
    flash(
        "You are the first admin. Invite your team from the Users page, and consider turning "
        "on two-step login on your profile.",
        "success",
    )
    return redirect(url_for("admin.users"), 303)
