"""The HTTP face of the server: a Flask app factory with one blueprint per resource."""

from __future__ import annotations

import importlib
import os
import pkgutil
import signal
import threading
import time

from flask import Flask
from flask_smorest import Api

from api import auth, errors
from api.context import ServerContext
from api.json_provider import JSONProvider
from bpm.config import Settings

API_SPEC = {
    "API_TITLE": "BPM process server",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api",
    "OPENAPI_JSON_PATH": "v1/openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    "OPENAPI_SWAGGER_UI_URL": "/static/vendor/swagger-ui/",
    "API_SPEC_OPTIONS": {
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "info": {"description": "Deploy BPMN, start processes, work tasks and follow every decision. "
                                "Errors are RFC 7807 problem+json."},
    },
}


def create_app(settings: Settings | None = None, clock=None, start_background: bool = False) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__, static_folder="web/static", template_folder="web/templates")
    app.config.update(API_SPEC)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + 1_000_000
    app.json = JSONProvider(app)
    app.json.ensure_ascii = False
    app.extensions["bpm"] = ServerContext.build(settings, clock)
    api = Api(app)
    errors.init_app(app)
    auth.init_app(app)
    for blueprint in _discover("api.blueprints"):
        api.register_blueprint(blueprint)
    _register_web(app)
    if start_background:
        _start_background(app)
    return app


def served_app() -> Flask:
    """The application of `bpm serve`, built in each HTTP worker process from the environment; in the embedded
    mode (no broker) with the in-process worker and scheduler."""
    settings = Settings.from_env()
    app = create_app(settings, start_background=settings.embedded)
    app.wsgi_app = _https_from_local_proxy(app.wsgi_app)
    _stop_when_orphaned()
    return app


def _stop_when_orphaned(interval: float = 1.0) -> None:
    """The worker process stops (SIGTERM to itself) once the main process that started it is gone, killed with
    SIGKILL say: it would otherwise go on serving beside a new server. gunicorn's workers watched the same."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="bpm-orphan-watch", daemon=True).start()


LOCAL_PROXIES = frozenset({"127.0.0.1", "::1"})


def _https_from_local_proxy(wsgi_app):
    """A request that a reverse proxy on this host received over HTTPS (X-Forwarded-Proto: https) is served as
    HTTPS, so the sign-in cookie is marked Secure; the header is ignored from any other address (gunicorn's
    default, kept when `bpm serve` moved to granian)."""
    def app(environ, start_response):
        if (environ.get("REMOTE_ADDR") in LOCAL_PROXIES
                and environ.get("HTTP_X_FORWARDED_PROTO", "").lower() == "https"):
            environ["wsgi.url_scheme"] = "https"
        return wsgi_app(environ, start_response)

    return app


def _discover(package_name: str):
    package = importlib.import_module(package_name)
    for module_info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package_name}.{module_info.name}")
        blueprint = getattr(module, "blp", None)
        if blueprint is not None:
            yield blueprint


def _register_web(app: Flask) -> None:
    try:
        web = importlib.import_module("api.web")
    except ImportError:
        return
    if hasattr(web, "init_app"):
        web.init_app(app)


def _start_background(app: Flask) -> None:
    """Embedded mode: the in-process worker and scheduler, when the workers package provides them."""
    try:
        embedded = importlib.import_module("workers.embedded")
    except ImportError:
        return
    embedded.start(app.extensions["bpm"])
