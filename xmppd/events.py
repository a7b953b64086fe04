"""Named events with priorities and Prosody's stop rule.

Handlers run highest priority first; the first one that returns anything but
``None`` ends the dispatch and its value is the result. A handler may return a
Deferred (or be ``async def``): the bus waits for it before the next handler.
Raising ``StanzaError`` ends the dispatch too; the router turns it into an error
reply (RFC 6120 §8.3).
"""

from __future__ import annotations

import inspect
from bisect import insort
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.python.failure import Failure


class Priority:
    """Named priority bands; higher runs first."""

    FILTER = 100  # may drop or bounce: privacy, blocking, limits
    ANNOTATE = 50  # adds to the stanza: ids, delay stamps
    DEFAULT = 0
    OBSERVE = -50  # side effects on the final stanza: archive, carbons, markers
    DELIVER = -100  # the core's RFC 6121 delivery, which stops


@dataclass(order=True)
class _Entry:
    sort_key: tuple[int, int]
    handler: Callable[[Any], Any] = field(compare=False)
    owner: str = field(compare=False, default="")


def _as_deferred(value: Any) -> Any:
    if inspect.iscoroutine(value):
        return ensureDeferred(value)
    return value


class EventBus:
    """Registry of handlers by event name."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[_Entry]] = {}
        self._seq = 0

    def on(
        self, name: str, handler: Callable[[Any], Any], priority: int = 0, owner: str = ""
    ) -> None:
        self._seq += 1
        # Sort by (-priority, registration order): stable among equals.
        insort(self._handlers.setdefault(name, []), _Entry((-priority, self._seq), handler, owner))

    def off(self, owner: str) -> None:
        """Remove every handler registered by ``owner`` (a plugin's name)."""
        for name in list(self._handlers):
            kept = [e for e in self._handlers[name] if e.owner != owner]
            if kept:
                self._handlers[name] = kept
            else:
                del self._handlers[name]

    def has(self, name: str) -> bool:
        return name in self._handlers

    def fire(self, name: str, event: Any) -> Any:
        """Run the handlers of ``name``; return the first non-None result.

        Synchronous handlers are called directly (the hot path allocates no
        Deferred). As soon as one returns a Deferred, the rest of the chain is
        continued in its callback and a Deferred is returned.
        """
        entries = self._handlers.get(name)
        if not entries:
            return None
        return self._run(entries, 0, event)

    def _run(self, entries: list[_Entry], start: int, event: Any) -> Any:
        for index in range(start, len(entries)):
            result = _as_deferred(entries[index].handler(event))
            if isinstance(result, Deferred):
                return result.addCallback(self._resume, entries, index + 1, event)
            if result is not None:
                return result
        return None

    def _resume(self, result: Any, entries: list[_Entry], start: int, event: Any) -> Any:
        if result is not None:
            return result
        return self._run(entries, start, event)

    def fire_all(self, name: str, event: Any) -> list[Any]:
        """Run every handler (no stop rule); collect results. For collecting
        contributions such as stream features and disco items."""
        results = []
        for entry in self._handlers.get(name, ()):
            try:
                value = entry.handler(event)
            except Exception:
                Failure().printTraceback()
                continue
            if value is not None:
                results.append(value)
        return results
