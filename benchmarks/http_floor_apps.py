"""The applications benchmarks/http_floor.py serves besides `bpm serve` (a module of their own, so the server
process imports nothing else)."""

BODY = b'{"status":"ok"}\n'


def wsgi_function(_environ, start_response):
    """The HTTP server's own cost: a small JSON body, nothing else."""
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]


def bare_flask():
    """granian's factory target: a Flask application with one route returning the same body with `jsonify`."""
    from flask import Flask, jsonify

    app = Flask("bare")
    app.add_url_rule("/healthz", "healthz", lambda: jsonify(status="ok"))
    return app
