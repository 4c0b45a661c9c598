"""Leads: assignment by rule and round-robin, the follow-up process and the public pool."""

from flask.views import MethodView

from api.auth import current_actor, uow
from api.blueprints import Blueprint
from api.blueprints.records_customers import page, vars_of
from api.schemas_records import LeadDetailSchema, LeadInSchema, LeadPatchSchema, LeadQuerySchema, LeadSchema
from bpm.adapters.orm_records import Lead
from bpm.services import leads, records

blp = Blueprint("leads", __name__, url_prefix="/api/v1/leads", description="Leads and the public pool")


@blp.route("")
class Leads(MethodView):
    @blp.arguments(LeadQuerySchema, location="query")
    @blp.response(200, LeadSchema(many=True))
    def get(self, query):
        """List leads (filters: owner, team, region, industry, status, in_pool)."""
        return records.list_records(uow(), current_actor(), Lead,
                                    page(query, "owner", "team", "region", "industry", "status", "in_pool"))

    @blp.arguments(LeadInSchema)
    @blp.response(201, LeadDetailSchema)
    def post(self, body):
        """Create a lead: the lead_assignment rule picks the team, round-robin the owner; the process starts."""
        lead, instance_id = leads.create_lead(body, current_actor(), uow())
        return _detail(lead.id) | {"instance_id": instance_id}


@blp.route("/<int:lead_id>")
class LeadResource(MethodView):
    @blp.response(200, LeadDetailSchema)
    def get(self, lead_id):
        """A lead with its pool history, processes and open tasks."""
        return _detail(lead_id)

    @blp.arguments(LeadPatchSchema)
    @blp.response(200, LeadSchema)
    def patch(self, body, lead_id):
        """Change descriptive fields of a lead."""
        return leads.update_lead(lead_id, body, current_actor(), uow())


@blp.route("/<int:lead_id>/claim")
class Claim(MethodView):
    @blp.response(200, LeadSchema)
    @blp.alt_response(409, description="Not in the pool, or you lost it less than 30 days ago (`available_from`)")
    def post(self, lead_id):
        """Claim a lead from your team's pool."""
        return leads.claim_lead(lead_id, current_actor(), uow())


def _detail(lead_id: int) -> dict:
    described = leads.describe_lead(uow(), current_actor(), lead_id)
    return {**vars_of(described.pop("lead")), **described}
