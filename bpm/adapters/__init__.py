"""Adapters: storage (SQLAlchemy), migrations and other outside-world concerns of the core."""
