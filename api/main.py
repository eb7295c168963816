"""ASGI entry point for ``uvicorn api.main:app`` (settings from the environment)."""

from api.app import create_app
from judge.logs import configure_logging
from judge.settings import get_settings

# Here, not in create_app: every uvicorn worker process imports this module; tests build apps without it.
configure_logging(get_settings())
app = create_app()
