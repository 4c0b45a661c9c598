"""Service functions: each command opens the unit of work, applies one engine step, and commits once."""

import importlib
import pkgutil


def load_handlers() -> None:
    """Import every service module so that their `@handles(Event)` registrations are in place."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
