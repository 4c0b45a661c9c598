"""Users, groups and API tokens: admins manage everyone; every user manages their own tokens."""

from flask.views import MethodView

from api.auth import current_actor, require_admin, uow
from api.blueprints import Blueprint
from api.schemas import (
    GroupCreateSchema,
    GroupSchema,
    IssuedTokenSchema,
    TokenCreateSchema,
    TokenSchema,
    UserCreateSchema,
    UserSchema,
    field_names,
)
from bpm.services import identity

blp = Blueprint("identity", __name__, url_prefix="/api/v1", description="Users, groups and tokens")


@blp.route("/users")
class Users(MethodView):
    @blp.response(200, UserSchema(many=True))
    def get(self):
        """List users."""
        require_admin()
        return identity.list_users(uow())

    @blp.arguments(UserCreateSchema)
    @blp.response(201, UserSchema)
    def post(self, body):
        """Create a user with roles and groups (unknown groups are created)."""
        require_admin()
        return identity.create_user(identity.CreateUser(**body), uow())


@blp.route("/groups")
class Groups(MethodView):
    @blp.response(200, GroupSchema(many=True))
    def get(self):
        """List groups with their members."""
        require_admin()
        return [{"name": g.name, "display_name": g.display_name, "members": members}
                for g, members in identity.list_groups(uow())]

    @blp.arguments(GroupCreateSchema)
    @blp.response(201, GroupSchema)
    def post(self, body):
        """Create a group."""
        require_admin()
        group = identity.create_group(body["name"], body["display_name"], uow())
        return {"name": group.name, "display_name": group.display_name, "members": []}


@blp.route("/users/me/tokens")
class MyTokens(MethodView):
    @blp.response(200, TokenSchema(many=True))
    def get(self):
        """List my own tokens (never the token itself)."""
        return identity.list_tokens(current_actor().username, uow())

    @blp.arguments(TokenCreateSchema)
    @blp.response(201, IssuedTokenSchema)
    def post(self, body):
        """Issue a token for myself, with scopes and an expiry; never wider than the calling token."""
        command = identity.IssueToken("", body.get("name", ""), body.get("scopes"), body.get("expires_at"))
        row, token = identity.issue_own_token(current_actor(), command, uow())
        return {**{c: getattr(row, c) for c in field_names(TokenSchema)}, "token": token}


@blp.route("/users/me/tokens/<int:token_id>")
class MyToken(MethodView):
    @blp.response(204)
    def delete(self, token_id):
        """Revoke one of my tokens."""
        identity.revoke_own_token(current_actor(), token_id, uow())


@blp.route("/users/<string:username>/tokens")
class Tokens(MethodView):
    @blp.response(200, TokenSchema(many=True))
    def get(self, username):
        """List a user's tokens (never the token itself)."""
        require_admin()
        return identity.list_tokens(username, uow())

    @blp.arguments(TokenCreateSchema)
    @blp.response(201, IssuedTokenSchema)
    def post(self, body, username):
        """Issue a token; it is shown in this response only."""
        require_admin()
        command = identity.IssueToken(username, body.get("name", ""), body.get("scopes"), body.get("expires_at"))
        row, token = identity.issue_token(command, uow())
        return {**{c: getattr(row, c) for c in field_names(TokenSchema)}, "token": token}


@blp.route("/users/<string:username>/tokens/<int:token_id>")
class TokenResource(MethodView):
    @blp.response(204)
    def delete(self, username, token_id):
        """Revoke a token."""
        require_admin()
        identity.revoke_token(username, token_id, uow())
