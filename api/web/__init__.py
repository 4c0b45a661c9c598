"""The web UI: server-rendered pages for approvers (inbox, task) and designers (modeler, forms, instance viewer).

Pages are thin Flask templates; their data comes from the public REST API, called by a little JavaScript with
the user's own API token (kept in a SameSite cookie after the login page checked it). So the browser can do
exactly what the user's token allows through the API, and nothing more. Texts are translated with Flask-Babel
(Simplified Chinese and English, from Accept-Language unless the user picked one); task names and form labels
from BPMN and forms are shown as written.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask_babel import Babel

from api.web import catalogs, views

LANGUAGES = ("en", "zh")
TRANSLATIONS = Path(__file__).parent / "translations"


def init_app(app: Flask) -> None:
    catalogs.ensure_compiled(TRANSLATIONS)
    Babel(app, locale_selector=views.select_locale, default_translation_directories=str(TRANSLATIONS))
    app.register_blueprint(views.web)
