"""An in-process event bus: plugins publish (``publish_event``), the host app subscribes.

``platform.events.subscribe("ticket.*", handler)``; the handler gets an :class:`Event` and may be
sync or async. Subscribers run in subscription order; one failing subscriber is logged and never
stops the others or the publishing plugin.
"""

from __future__ import annotations

import fnmatch
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("goatkit.events")


@dataclass(frozen=True)
class Event:
    plugin: str
    topic: str
    payload: Any
    time: float


Subscriber = Callable[[Event], Any]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[tuple[str, Subscriber]] = []

    def subscribe(self, pattern: str, handler: Subscriber) -> Callable[[], None]:
        """Call ``handler`` for events whose topic matches ``pattern`` (``*`` wildcards).

        Returns a function that unsubscribes.
        """
        entry = (pattern, handler)
        self._subscribers.append(entry)

        def unsubscribe() -> None:
            if entry in self._subscribers:
                self._subscribers.remove(entry)

        return unsubscribe

    async def publish(self, plugin: str, topic: str, payload: Any) -> int:
        """Deliver an event; returns how many subscribers received it without failing."""
        event = Event(plugin, topic, payload, time.time())
        delivered = 0
        for pattern, handler in list(self._subscribers):
            if not fnmatch.fnmatchcase(topic, pattern):
                continue
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a host subscriber's bug must not fail the plugin's call
                logger.exception("event subscriber %r failed on %s from %s", handler, topic, plugin)
                continue
            delivered += 1
        return delivered
