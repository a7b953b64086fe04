"""Shared steps of the markers, correction and message_delete tests: a harness
with the dialogs plugin, a saved 1-1 message and what the store says about it."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from sqlalchemy import select
from twisted.internet import defer
from twisted.words.xish import domish

from plugins.dialogs.tables import dialogs_messages
from tests.harness import Harness

NOW = 1_800_000_000
MID = "65f0c0ffee0000000000abcd"  # the saved message's id (24 hex: kept as its _id)
EXTRA = "<extraParams xmlns='jabber:client'>{}</extraParams>"
SAVE = "<save_to_history>1</save_to_history>"


def start(tmp_path: Any, *plugins: str) -> Harness:
    h = pytest_twisted.blockon(Harness.start(tmp_path, plugins={"enabled": ["dialogs", *plugins]}))
    h.clock.advance(NOW)
    return h


def extra(dialog_id: str | None = None, more: str = "") -> str:
    dialog = f"<dialog_id>{dialog_id}</dialog_id>" if dialog_id else ""
    return EXTRA.format(dialog + more)


def message(to: str, payload: str, mid: str = "n0tifyid", kind: str = "chat") -> str:
    return f"<message to='{to}' type='{kind}' id='{mid}'>{payload}</message>"


@defer.inlineCallbacks
def saved(h: Harness, sender: Any, to: str, body: str = "hello", mid: str = MID):
    """``sender`` sends a saved chat message to ``to``; -> its dialog id."""
    yield h.send(sender, message(to, f"<body>{body}</body>{extra(more=SAVE)}", mid))
    found = yield h.server.db.run(
        lambda conn: conn.execute(
            select(dialogs_messages.c.dialog_id).where(dialogs_messages.c.id == mid)
        ).scalar()
    )
    return found


def store(h: Harness) -> Any:
    return h.server.plugins.plugins["dialogs"]


@defer.inlineCallbacks
def history(h: Harness, login: str, dialog_id: str) -> Any:
    """The dialog's history as ``login`` lists it (not marking it read), by id."""
    page = yield store(h).messages(h.app_id, h.users[login].id, dialog_id, {"mark_as_read": "0"})
    return {m["_id"]: m for m in page["items"]}


@defer.inlineCallbacks
def dialog(h: Harness, login: str, dialog_id: str):
    """The Dialog as ``login`` sees it (his unread count)."""
    d = yield store(h).get(h.app_id, dialog_id, h.users[login].id)
    return d


def condition(stanza: domish.Element) -> tuple[str, str]:
    """The (legacy code, condition) of an error stanza (RFC 6120 §8.3, XEP-0086)."""
    assert stanza["type"] == "error", stanza.toXml()
    error = next(c for c in stanza.elements() if c.name == "error")
    return error.getAttribute("code"), next(c.name for c in error.elements() if c.name != "text")


def child_names(stanza: domish.Element) -> list[str]:
    names = [c.name for c in stanza.elements()]
    for e in stanza.elements("jabber:client", "extraParams"):
        names += [f"extraParams/{c.name}" for c in e.elements()]
    return names
