"""Tickets (complaints): creating one starts the complaint process under the ticket number."""

from flask.views import MethodView

from api.auth import current_actor, uow
from api.blueprints import Blueprint
from api.blueprints.records_customers import page, vars_of
from api.schemas_records import TicketDetailSchema, TicketInSchema, TicketPatchSchema, TicketQuerySchema, TicketSchema
from bpm.adapters.orm_records import Ticket
from bpm.services import complaints, records

blp = Blueprint("tickets", __name__, url_prefix="/api/v1/tickets", description="Complaints and their SLAs")


@blp.route("")
class Tickets(MethodView):
    @blp.arguments(TicketQuerySchema, location="query")
    @blp.response(200, TicketSchema(many=True))
    def get(self, query):
        """List tickets (filters: customer_id, status, priority, category)."""
        return records.list_records(uow(), current_actor(), Ticket,
                                    page(query, "customer_id", "status", "priority", "category"))

    @blp.arguments(TicketInSchema)
    @blp.response(201, TicketDetailSchema)
    def post(self, body):
        """Open a complaint: creates the ticket and starts its complaint handling process."""
        ticket, instance_id = complaints.create_ticket(body, current_actor(), uow())
        return _detail(ticket.id) | {"instance_id": instance_id}


@blp.route("/<int:ticket_id>")
class TicketResource(MethodView):
    @blp.response(200, TicketDetailSchema)
    def get(self, ticket_id):
        """A ticket with its SLA times, interactions, processes and open tasks."""
        return _detail(ticket_id)

    @blp.arguments(TicketPatchSchema)
    @blp.response(200, TicketSchema)
    def patch(self, body, ticket_id):
        """Change subject, description, priority or category (raising to high notifies the directors)."""
        return complaints.update_ticket(ticket_id, body, current_actor(), uow())


def _detail(ticket_id: int) -> dict:
    described = complaints.describe_ticket(uow(), current_actor(), ticket_id)
    return {**vars_of(described.pop("ticket")), **described}
