"""The home page a logged-in user lands on."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("main", __name__)


@bp.get("/")
def home():
    """The moderator's starting point; the review capability adds queue sizes and exposure."""
    return render_template("main/home.html")
