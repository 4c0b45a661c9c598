"""Customers, their contacts and interactions (calls, visits, emails, meetings)."""

from flask.views import MethodView

from api.auth import current_actor, uow
from api.blueprints import Blueprint
from api.schemas_records import (
    ContactInSchema,
    ContactPatchSchema,
    ContactQuerySchema,
    ContactSchema,
    CustomerDetailSchema,
    CustomerInSchema,
    CustomerPatchSchema,
    CustomerQuerySchema,
    CustomerSchema,
    InteractionInSchema,
    InteractionQuerySchema,
    InteractionSchema,
)
from bpm.adapters.orm_records import Contact, Customer, Interaction
from bpm.services import records

blp = Blueprint("customers", __name__, url_prefix="/api/v1", description="Customer records")


def page(query: dict, *filters: str) -> records.RecordQuery:
    return records.RecordQuery({name: query.get(name) for name in filters}, query["limit"], query.get("after"),
                               query.get("q"))


@blp.route("/customers")
class Customers(MethodView):
    @blp.arguments(CustomerQuerySchema, location="query")
    @blp.response(200, CustomerSchema(many=True))
    def get(self, query):
        """List customers (filters: owner, region, industry, tier, q = part of the name)."""
        return records.list_records(uow(), current_actor(), Customer,
                                    page(query, "owner", "region", "industry", "tier"))

    @blp.arguments(CustomerInSchema)
    @blp.response(201, CustomerSchema)
    def post(self, body):
        """Create a customer (owner defaults to the caller)."""
        return records.create_customer(body, current_actor(), uow())


@blp.route("/customers/<int:customer_id>")
class CustomerResource(MethodView):
    @blp.response(200, CustomerDetailSchema)
    def get(self, customer_id):
        """A customer with contacts, recent interactions, processes and open tasks."""
        described = records.describe_customer(uow(), current_actor(), customer_id)
        return {**vars_of(described.pop("customer")), **described}

    @blp.arguments(CustomerPatchSchema)
    @blp.response(200, CustomerSchema)
    def patch(self, body, customer_id):
        """Change some fields of a customer."""
        return records.update_customer(customer_id, body, current_actor(), uow())


@blp.route("/contacts")
class Contacts(MethodView):
    @blp.arguments(ContactQuerySchema, location="query")
    @blp.response(200, ContactSchema(many=True))
    def get(self, query):
        """List contacts (filters: customer_id, role)."""
        return records.list_records(uow(), current_actor(), Contact, page(query, "customer_id", "role"))

    @blp.arguments(ContactInSchema)
    @blp.response(201, ContactSchema)
    def post(self, body):
        """Add a contact with its role in the decision chain."""
        return records.create_contact(body, current_actor(), uow())


@blp.route("/contacts/<int:contact_id>")
class ContactResource(MethodView):
    @blp.response(200, ContactSchema)
    def get(self, contact_id):
        """One contact."""
        actor = current_actor()
        records.require_read(actor)
        unit = uow()
        with unit:
            return records.get_contact(unit, contact_id)

    @blp.arguments(ContactPatchSchema)
    @blp.response(200, ContactSchema)
    def patch(self, body, contact_id):
        """Change some fields of a contact."""
        return records.update_contact(contact_id, body, current_actor(), uow())


@blp.route("/interactions")
class Interactions(MethodView):
    @blp.arguments(InteractionQuerySchema, location="query")
    @blp.response(200, InteractionSchema(many=True))
    def get(self, query):
        """List interactions (filters: customer_id, lead_id, ticket_id, kind)."""
        return records.list_records(uow(), current_actor(), Interaction,
                                    page(query, "customer_id", "lead_id", "ticket_id", "kind"))

    @blp.arguments(InteractionInSchema)
    @blp.response(201, InteractionSchema)
    def post(self, body):
        """Record a call, visit, email or meeting on a customer, lead or ticket."""
        return records.create_interaction(body, current_actor(), uow())


def vars_of(row) -> dict:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}
