"""Routes of the web UI: login/logout, language choice, and the page shells whose data the browser fetches.

A page needs a valid API token in the `bpm_token` cookie (set by the login form after the token was checked);
without one it redirects to the login page. The pages never act on the user's behalf server-side: every
operation goes through the REST API with the same token.
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlparse

from flask import Blueprint, g, redirect, render_template, request, url_for
from flask_babel import get_locale, gettext

from api.auth import server
from api.web.texts import js_texts
from bpm.domain.errors import Unauthenticated
from bpm.services import identity

web = Blueprint("web", __name__)

TOKEN_COOKIE = "bpm_token"  # noqa: S105 - the cookie's name, not a secret
LANG_COOKIE = "bpm_lang"
SUPPORTED = ("zh", "en")
COOKIE_AGE = 30 * 24 * 3600


def select_locale() -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in SUPPORTED:
        return chosen
    return request.accept_languages.best_match(["zh_CN", "zh", "en"], default="en")[:2]


def _actor_from_cookie():
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        return None
    try:
        return identity.authenticate(token, server().uow())
    except Unauthenticated:
        return None


def page(view):
    """A page for a logged-in user; others go to the login page and come back afterwards."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        g.web_actor = _actor_from_cookie()
        if g.web_actor is None:
            return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper


@web.app_context_processor
def _page_globals():
    actor = getattr(g, "web_actor", None)
    return {"me": actor, "lang": str(get_locale() or "en"), "js_texts": js_texts,
            "is_designer": bool(actor and actor.may("deploy"))}


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect to another host after login."""
    if not target or not target.startswith("/") or target.startswith("//") or urlparse(target).netloc:
        return url_for("web.inbox")
    return target


@web.route("/")
def home():
    return redirect(url_for("web.inbox"))


@web.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        token = request.form.get("token", "").strip()
        actor = _authenticate(token)
        if actor is None or (username and username != actor.username):
            error = gettext("Unknown user or token.")
        else:
            response = redirect(_safe_next(request.form.get("next")))
            response.set_cookie(TOKEN_COOKIE, token, max_age=COOKIE_AGE, samesite="Strict", secure=request.is_secure)
            return response
    return render_template("login.html", error=error, next=request.values.get("next", "")), 401 if error else 200


def _authenticate(token: str):
    if not token:
        return None
    try:
        return identity.authenticate(token, server().uow())
    except Unauthenticated:
        return None


@web.route("/logout", methods=["GET", "POST"])
def logout():
    response = redirect(url_for("web.login"))
    response.delete_cookie(TOKEN_COOKIE)
    return response


@web.route("/lang/<code>")
def choose_language(code):
    response = redirect(_safe_next(request.args.get("next")))
    if code in SUPPORTED:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 24 * 3600, samesite="Lax")
    return response


@web.route("/inbox")
@page
def inbox():
    return render_template("inbox.html")


@web.route("/requests")
@page
def my_requests():
    """The initiator's view: the requests I started, their current steps, urge and withdraw."""
    return render_template("my_requests.html")


@web.route("/tasks/<task_id>")
@page
def task(task_id):
    return render_template("task.html", task_id=task_id)


@web.route("/instances/<instance_id>")
@page
def instance(instance_id):
    return render_template("instance.html", instance_id=instance_id)


@web.route("/designer")
@page
def designer():
    return render_template("designer.html")


@web.route("/designer/modeler")
@page
def modeler():
    return render_template("modeler.html", key=request.args.get("key", ""), version=request.args.get("version", ""))


@web.route("/designer/forms")
@page
def form_editor():
    return render_template("forms.html", key=request.args.get("key", ""))
