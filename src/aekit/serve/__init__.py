"""``aekit serve``: the loaded models behind a small HTTP API (FastAPI + uvicorn).

``create_app(runs, index=None, ...)`` builds the app; ``aekit serve RUN ... [--index INDEX]`` runs it.
"""

from .app import create_app

__all__ = ["create_app"]
