"""The seam between nodes: who is online elsewhere, and how to reach them.

The router never talks to another node directly. It asks the
:class:`~xmppd.sessions.SessionDirectory` for an account's resources; the
directory asks the :class:`FanOut` for resources bound on other nodes, which
come back as session handles whose ``send`` crosses the cluster. A fan-out
implementation provides three calls:

``publish(session)``
    a resource was bound here: tell the other nodes (and keep it published).
``withdraw(session)``
    it is gone.
``remote_sessions(bare: str) -> list``
    handles for the account's resources on other nodes; each has ``jid``,
    ``bare``, ``available``, ``priority``, ``presence``, ``slots`` and
    ``send(element)``, like a local :class:`~xmppd.sessions.Session`.

:class:`InProcessFanOut` is the single-node implementation: there are no other
nodes. A Redis implementation (txredisapi, pub/sub per node and a hash of
resources per account) plugs in behind the same three calls; docs/cluster.md
describes the contract it must keep.
"""

from __future__ import annotations

from typing import Any, Protocol


class FanOut(Protocol):
    def publish(self, session: Any) -> None: ...

    def withdraw(self, session: Any) -> None: ...

    def remote_sessions(self, bare: str) -> list[Any]: ...


class InProcessFanOut:
    """One node: every session is local, so there is nothing to fan out."""

    def publish(self, session: Any) -> None:
        pass

    def withdraw(self, session: Any) -> None:
        pass

    def remote_sessions(self, bare: str) -> list[Any]:
        return []
