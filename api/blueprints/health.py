"""Liveness and readiness for load balancers and orchestrators."""

from flask import jsonify
from flask.views import MethodView
from sqlalchemy import text

from api.auth import server
from api.blueprints import Blueprint

blp = Blueprint("health", __name__, description="Liveness and readiness")


@blp.route("/healthz")
class Health(MethodView):
    @blp.doc(security=[])
    def get(self):
        """The process is up."""
        return jsonify(status="ok")


@blp.route("/readyz")
class Ready(MethodView):
    @blp.doc(security=[])
    def get(self):
        """The process can reach its database."""
        try:
            with server().engine.begin() as connection:  # COMMIT: a ROLLBACK drops the connection's prepared statements
                connection.execute(text("SELECT 1"))
        except Exception as error:  # noqa: BLE001 - any failure means not ready
            response = jsonify(status="unavailable", database=str(error).split("\n")[0])
            response.status_code = 503
            return response
        return jsonify(status="ready", database="ok")
