"""Modtools Image: an open-source image moderation platform. ``create_app`` is the only entry."""

from __future__ import annotations

from typing import Any

from flask import Flask

from app.config import instance_path_from_env, load_config

BLUEPRINTS = [
    "app.views.main",
    "app.views.health",
    "app.views.auth",
    "app.views.setup",
    "app.views.admin",
    "app.views.api",
    "app.views.ingest",
    "app.views.items",
    "app.views.review",
    "app.views.media",
    "app.views.actions",
    "app.views.reports",
    "app.views.hooks",
    "app.views.stats",
]


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: configuration, extensions, blueprints, security, CLI."""
    app = Flask(
        __name__,
        instance_path=instance_path_from_env(),
        instance_relative_config=True,
        static_folder="../static",
        template_folder="../templates",
    )
    load_config(app, test_config)

    from app import cli, database, errors, logs, security
    from app.extensions import csrf, init_huey, login_manager, migrate

    logs.init_logging(app)
    database.init_database(app)
    migrate.init_app(
        app, database.db, directory=str(app.root_path + "/../migrations"), render_as_batch=True
    )
    csrf.init_app(app)
    login_manager.init_app(app)
    from app.views.auth import init_login

    init_login(app)
    init_huey(app)
    security.init_security(app)
    errors.init_errors(app)
    from app.services.storage import init_media

    init_media(app)  # S3 settings that cannot work stop start-up with a clear error

    from app.plugins import init_plugins

    init_plugins(app)  # a broken or duplicate plugin stops start-up with a clear error

    import importlib

    for module in BLUEPRINTS:
        blueprint = importlib.import_module(module).bp
        app.register_blueprint(blueprint)
        if blueprint.name in security.SELF_AUTHENTICATING_BLUEPRINTS:
            csrf.exempt(blueprint)

    from app import navigation, tasks  # noqa: F401  (registers the Huey task)

    navigation.init_navigation(app)
    cli.init_cli(app)
    from app.services.traffic import init_traffic

    init_traffic(app)
    if app.config["PROXY_FIX"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["PROXY_FIX"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    return app
