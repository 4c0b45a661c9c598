"""Event handlers run inside the publishing transaction (outbox rows, notifications, projections).

Other modules register with `@handles(EventType)`; `dispatch` runs at commit, including events that
handlers themselves publish, so everything an event causes is written atomically with the command.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

HANDLERS: dict[type, list[Callable]] = defaultdict(list)
MAX_CASCADE = 1000


def handles(event_type: type) -> Callable:
    def register(function: Callable) -> Callable:
        if function not in HANDLERS[event_type]:
            HANDLERS[event_type].append(function)
        return function

    return register


def dispatch(uow) -> None:
    handled = 0
    while uow.events:
        event = uow.events.pop(0)
        for handler in HANDLERS.get(type(event), ()):
            handler(event, uow)
        handled += 1
        if handled > MAX_CASCADE:
            raise RuntimeError("event handlers keep publishing events: a cycle?")
