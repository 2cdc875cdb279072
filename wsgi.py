"""The application for waitress and ``flask --app wsgi``; ``python wsgi.py`` runs everything."""

import os

from app import create_app

app = create_app()

if __name__ == "__main__":
    from app.runner import serve

    serve(
        app,
        host=os.environ.get("HOST"),
        port=int(os.environ["PORT"]) if os.environ.get("PORT") else None,
    )
