"""Schemas of the customer records (customers, contacts, leads, quotes, tickets, interactions) and of rules."""

from __future__ import annotations

from marshmallow import fields, validate

from api.schema_base import Schema
from api.schemas import UTCDateTime
from bpm.services.complaints import CATEGORIES, PRIORITIES
from bpm.services.leads import STATUSES as LEAD_STATUSES
from bpm.services.records import CONTACT_ROLES, INTERACTION_KINDS, TIERS

NAME = validate.Length(min=1, max=255)
USERNAME = validate.Length(min=1, max=150)


class PageQuerySchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    after = fields.Integer(metadata={"description": "return records with an id after this one"})


# --- linked processes --------------------------------------------------------------------------------------------


class LinkedProcessSchema(Schema):
    id = fields.String()
    process_key = fields.String()
    status = fields.String()
    started_at = UTCDateTime()
    ended_at = UTCDateTime(allow_none=True)


class LinkedTaskSchema(Schema):
    id = fields.String()
    instance_id = fields.String()
    element_id = fields.String()
    name = fields.String()
    assignee = fields.String(allow_none=True)
    candidate_groups = fields.List(fields.String())
    due_at = UTCDateTime(allow_none=True)


class LinksMixin(Schema):
    processes = fields.List(fields.Nested(LinkedProcessSchema))
    open_tasks = fields.List(fields.Nested(LinkedTaskSchema))


# --- customers and contacts ----------------------------------------------------------------------------------------


class CustomerInSchema(Schema):
    name = fields.String(required=True, validate=NAME)
    industry = fields.String(allow_none=True, validate=validate.Length(max=100))
    region = fields.String(allow_none=True, validate=validate.Length(max=100))
    tier = fields.String(load_default="standard", validate=validate.OneOf(TIERS))
    owner = fields.String(allow_none=True, validate=USERNAME)
    key_contact_birthday = fields.Date(allow_none=True)


class CustomerPatchSchema(CustomerInSchema):
    name = fields.String(validate=NAME)
    tier = fields.String(validate=validate.OneOf(TIERS))


class CustomerSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    industry = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    tier = fields.String()
    owner = fields.String(allow_none=True)
    key_contact_birthday = fields.Date(allow_none=True)
    last_interaction_at = UTCDateTime(allow_none=True)
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class CustomerQuerySchema(PageQuerySchema):
    owner = fields.String()
    region = fields.String()
    industry = fields.String()
    tier = fields.String(validate=validate.OneOf(TIERS))
    q = fields.String(metadata={"description": "part of the name"})


class ContactInSchema(Schema):
    customer_id = fields.Integer(required=True)
    name = fields.String(required=True, validate=NAME)
    role = fields.String(required=True, validate=validate.OneOf(CONTACT_ROLES))
    email = fields.Email(allow_none=True)
    phone = fields.String(allow_none=True, validate=validate.Length(max=50))


class ContactPatchSchema(ContactInSchema):
    customer_id = fields.Integer()
    name = fields.String(validate=NAME)
    role = fields.String(validate=validate.OneOf(CONTACT_ROLES))


class ContactSchema(Schema):
    id = fields.Integer()
    customer_id = fields.Integer()
    name = fields.String()
    role = fields.String()
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class ContactQuerySchema(PageQuerySchema):
    customer_id = fields.Integer()
    role = fields.String(validate=validate.OneOf(CONTACT_ROLES))


class InteractionInSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(INTERACTION_KINDS))
    notes = fields.String(load_default="", validate=validate.Length(max=10000))
    at = fields.AwareDateTime(default_timezone=None)
    customer_id = fields.Integer(allow_none=True)
    lead_id = fields.Integer(allow_none=True)
    ticket_id = fields.Integer(allow_none=True)


class InteractionSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    notes = fields.String()
    actor = fields.String(allow_none=True)
    at = UTCDateTime()
    customer_id = fields.Integer(allow_none=True)
    lead_id = fields.Integer(allow_none=True)
    ticket_id = fields.Integer(allow_none=True)


class InteractionQuerySchema(PageQuerySchema):
    customer_id = fields.Integer()
    lead_id = fields.Integer()
    ticket_id = fields.Integer()
    kind = fields.String(validate=validate.OneOf(INTERACTION_KINDS))


class RelatedRecordSchema(Schema):
    id = fields.Integer()
    number = fields.String()
    status = fields.String()
    amount = fields.Float()
    priority = fields.String()
    satisfaction_score = fields.Integer(allow_none=True)


class CustomerDetailSchema(CustomerSchema, LinksMixin):
    contacts = fields.List(fields.Nested(ContactSchema))
    interactions = fields.List(fields.Nested(InteractionSchema))
    quotes = fields.List(fields.Nested(RelatedRecordSchema))
    tickets = fields.List(fields.Nested(RelatedRecordSchema))
    leads = fields.List(fields.Nested(RelatedRecordSchema))


# --- quotes --------------------------------------------------------------------------------------------------------


class LineItemSchema(Schema):
    product = fields.String(required=True, validate=NAME)
    quantity = fields.Decimal(required=True, as_string=False, validate=validate.Range(min=0, min_inclusive=False))
    unit_price = fields.Decimal(required=True, as_string=False, validate=validate.Range(min=0))


class QuoteInSchema(Schema):
    customer_id = fields.Integer(required=True)
    line_items = fields.List(fields.Nested(LineItemSchema), load_default=list)
    amount = fields.Decimal(as_string=False, allow_none=True, validate=validate.Range(min=0))
    discount = fields.Decimal(as_string=False, load_default=0, validate=validate.Range(min=0, max=100))
    currency = fields.String(load_default="CNY", validate=validate.Length(equal=3))
    valid_until = fields.Date(allow_none=True)
    notes = fields.String(load_default="", validate=validate.Length(max=10000))
    owner = fields.String(validate=USERNAME)


class QuotePatchSchema(QuoteInSchema):
    customer_id = fields.Integer()
    line_items = fields.List(fields.Nested(LineItemSchema))
    discount = fields.Decimal(as_string=False, validate=validate.Range(min=0, max=100))
    currency = fields.String(validate=validate.Length(equal=3))
    notes = fields.String(validate=validate.Length(max=10000))


class ApprovalEntrySchema(Schema):
    step = fields.String()
    actor = fields.String(allow_none=True)
    outcome = fields.String()
    opinion = fields.String(allow_none=True)
    at = fields.String()


class QuoteSchema(Schema):
    id = fields.Integer()
    number = fields.String()
    customer_id = fields.Integer()
    owner = fields.String(allow_none=True)
    line_items = fields.List(fields.Dict())
    amount = fields.Float()
    discount = fields.Float()
    currency = fields.String()
    valid_until = fields.Date(allow_none=True)
    notes = fields.String()
    status = fields.String()
    approvals = fields.List(fields.Nested(ApprovalEntrySchema))
    has_pdf = fields.Function(lambda quote: bool(quote["pdf_path"] if isinstance(quote, dict) else quote.pdf_path))
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class QuoteDetailSchema(QuoteSchema, LinksMixin):
    customer = fields.Nested(CustomerSchema)


class QuoteQuerySchema(PageQuerySchema):
    customer_id = fields.Integer()
    owner = fields.String()
    status = fields.String(validate=validate.OneOf(
        ["draft", "submitted", "revising", "approved", "withdrawn"]))


class SubmittedSchema(Schema):
    quote = fields.Nested(QuoteSchema)
    instance_id = fields.String()


# --- tickets -------------------------------------------------------------------------------------------------------


class TicketInSchema(Schema):
    customer_id = fields.Integer(required=True)
    subject = fields.String(required=True, validate=NAME)
    description = fields.String(load_default="", validate=validate.Length(max=10000))
    priority = fields.String(load_default="normal", validate=validate.OneOf(PRIORITIES))
    category = fields.String(load_default="general", validate=validate.OneOf(CATEGORIES))


class TicketPatchSchema(Schema):
    subject = fields.String(validate=NAME)
    description = fields.String(validate=validate.Length(max=10000))
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    category = fields.String(validate=validate.OneOf(CATEGORIES))


class TicketSchema(Schema):
    id = fields.Integer()
    number = fields.String()
    customer_id = fields.Integer()
    subject = fields.String()
    description = fields.String()
    priority = fields.String()
    category = fields.String()
    status = fields.String()
    engineer_group = fields.String(allow_none=True)
    sla = fields.Dict()
    satisfaction_score = fields.Integer(allow_none=True)
    created_at = UTCDateTime()
    updated_at = UTCDateTime()
    closed_at = UTCDateTime(allow_none=True)


class TicketDetailSchema(TicketSchema, LinksMixin):
    interactions = fields.List(fields.Nested(InteractionSchema))
    instance_id = fields.String()


class TicketQuerySchema(PageQuerySchema):
    customer_id = fields.Integer()
    status = fields.String()
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    category = fields.String(validate=validate.OneOf(CATEGORIES))


# --- leads ---------------------------------------------------------------------------------------------------------


class LeadInSchema(Schema):
    name = fields.String(required=True, validate=NAME)
    source = fields.String(allow_none=True, validate=validate.Length(max=100))
    region = fields.String(allow_none=True, validate=validate.Length(max=100))
    industry = fields.String(allow_none=True, validate=validate.Length(max=100))
    team = fields.String(validate=USERNAME, metadata={"description": "skip the assignment rule"})
    owner = fields.String(validate=USERNAME, metadata={"description": "skip the round-robin"})


class LeadPatchSchema(Schema):
    name = fields.String(validate=NAME)
    source = fields.String(allow_none=True, validate=validate.Length(max=100))
    region = fields.String(allow_none=True, validate=validate.Length(max=100))
    industry = fields.String(allow_none=True, validate=validate.Length(max=100))


class LeadSchema(Schema):
    id = fields.Integer()
    number = fields.String()
    name = fields.String()
    source = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    industry = fields.String(allow_none=True)
    team = fields.String(allow_none=True)
    owner = fields.String(allow_none=True)
    status = fields.String()
    in_pool = fields.Boolean()
    last_follow_up_at = UTCDateTime(allow_none=True)
    customer_id = fields.Integer(allow_none=True)
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class PoolEventSchema(Schema):
    previous_owner = fields.String(allow_none=True)
    returned_at = UTCDateTime()
    claimed_by = fields.String(allow_none=True)
    claimed_at = UTCDateTime(allow_none=True)


class LeadDetailSchema(LeadSchema, LinksMixin):
    pool_history = fields.List(fields.Nested(PoolEventSchema))
    instance_id = fields.String()


class LeadQuerySchema(PageQuerySchema):
    owner = fields.String()
    team = fields.String()
    region = fields.String()
    industry = fields.String()
    status = fields.String(validate=validate.OneOf(LEAD_STATUSES))
    in_pool = fields.Boolean()


# --- rules ---------------------------------------------------------------------------------------------------------


class RuleSchema(Schema):
    name = fields.String()
    version = fields.Integer()
    description = fields.String()
    document = fields.Raw()
    updated_by = fields.String(allow_none=True)
    updated_at = UTCDateTime(allow_none=True)
    source = fields.String()


class RulePutSchema(Schema):
    document = fields.Raw(required=True, metadata={"description": "json-logic, or {\"outputs\": {name: logic}}"})
    description = fields.String(validate=validate.Length(max=2000))
    expected_version = fields.Integer(metadata={"description": "409 when the rule is at another version"})


class RuleVersionSchema(Schema):
    version = fields.Integer()
    description = fields.String()
    document = fields.Raw()
    updated_by = fields.String(allow_none=True)
    updated_at = UTCDateTime()


class RuleEvaluateSchema(Schema):
    data = fields.Dict(load_default=dict)


class RuleResultSchema(Schema):
    result = fields.Raw()
    rule = fields.String()
    values = fields.Dict()
