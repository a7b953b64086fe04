"""The hosted services' ``<extraParams>`` on RFC 6121 chat messages
(SDK-CONTRACT §4.5; issue 3 "History over XMPP"): read what a client asks to
save, bound it (SECURITY H66), and stamp the server's ids on the stanza (H59)."""

from __future__ import annotations

import re
from typing import Any

from twisted.words.xish import domish

from plugins.dialogs.history import NewMessage
from plugins.dialogs.model import InvalidError
from xmppd.errors import StanzaError

NS_CLIENT = "jabber:client"
MAX_ATTACHMENTS = 32
MAX_EXTRA_BYTES = 64 * 1024
CLOCK_SKEW = 5  # seconds a client's date_sent may differ from the server's (issue 3)
ATTACHMENT_KEYS = frozenset(
    ("type", "id", "uid", "url", "data", "size", "width", "height", "duration")
    + ("content-type", "name")
)
NUMERIC_KEYS = frozenset(("size", "width", "height", "duration"))
# Children the server reads or writes itself; everything else is a custom parameter.
RESERVED = frozenset(("save_to_history", "dialog_id", "message_id", "date_sent", "attachment"))


def _children(element: domish.Element, name: str | None = None) -> list[domish.Element]:
    return [c for c in element.elements() if name is None or c.name == name]


def _value(element: domish.Element) -> Any:
    """Text, or nested elements as an object (§4.5: "nested objects become nested elements")."""
    kids = _children(element)
    if not kids:
        return str(element)
    return {k.name: _value(k) for k in kids}


def _attachment(element: domish.Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in element.attributes.items():
        if isinstance(key, str) and key in ATTACHMENT_KEYS:
            out[key] = int(value) if key in NUMERIC_KEYS and value.isdigit() else value
    return out


def extra_params(stanza: domish.Element) -> domish.Element | None:
    """The ``<extraParams xmlns='jabber:client'>`` of a message asking to be saved
    (a ``<save_to_history>`` child, whatever its value, §4.5), else ``None``.
    A client's ``message_id`` is dropped from every one, saved or not (H59)."""
    found = [c for c in stanza.elements(NS_CLIENT, "extraParams")]
    for extra in found:
        for child in _children(extra, "message_id"):
            extra.children.remove(child)
    if not found or not any(_children(e, "save_to_history") for e in found):
        return None
    if len(found) > 1:
        raise StanzaError("not-acceptable", text="one extraParams per message")
    return found[0]


def read_message(stanza: domish.Element, extra: domish.Element, sender: int, now: float):
    """A :class:`NewMessage` from a chat stanza; H66 bounds -> ``not-acceptable``;
    ``date_sent`` is the client's within CLOCK_SKEW seconds of ``now``, else ``now``."""
    attachments = _children(extra, "attachment")
    if len(attachments) > MAX_ATTACHMENTS:
        raise StanzaError("not-acceptable", text=f"at most {MAX_ATTACHMENTS} attachments")
    if len(extra.toXml().encode()) > MAX_EXTRA_BYTES:
        raise StanzaError("not-acceptable", text="extraParams too large")
    date_sent = int(now)
    claimed = next(iter(_children(extra, "date_sent")), None)
    try:
        client = int(float(str(claimed))) if claimed is not None else None
    except (ValueError, OverflowError):
        client = None
    if client is not None and abs(client - now) <= CLOCK_SKEW:
        date_sent = client
    given = next(iter(_children(extra, "dialog_id")), None)
    body = next(stanza.elements(NS_CLIENT, "body"), None)
    return NewMessage(
        sender_id=sender,
        date_sent=date_sent,
        body=str(body) if body is not None else None,
        dialog_id=(str(given).strip() or None) if given is not None else None,
        id=stanza.getAttribute("id"),
        params={c.name: _value(c) for c in _children(extra) if c.name not in RESERVED},
        attachments=[_attachment(a) for a in attachments],
    )


def stamp(extra: domish.Element, dialog_id: str, message_id: str, date_sent: int) -> None:
    """H59: drop client copies of the server's children, then add the stored values
    (``dialog_id``, ``message_id``, ``date_sent``: SDK-CONTRACT §4.5)."""
    for child in list(extra.elements()):
        if child.name in ("dialog_id", "message_id", "date_sent"):
            extra.children.remove(child)
    for name, value in (("dialog_id", dialog_id), ("message_id", message_id)):
        extra.addElement(name, content=value)
    extra.addElement("date_sent", content=str(date_sent))


def stamp_dialog(stanza: domish.Element, dialog_id: str) -> None:
    """Issue 5: an unsaved group message still carries ``extraParams/dialog_id``
    (the room's dialog), never a client's ``dialog_id`` or ``message_id`` (H59)."""
    extra = next(stanza.elements(NS_CLIENT, "extraParams"), None)
    if extra is None:
        extra = stanza.addElement((NS_CLIENT, "extraParams"))
    for child in list(extra.elements()):
        if child.name in ("dialog_id", "message_id"):
            extra.children.remove(child)
    extra.addElement("dialog_id", content=dialog_id)


# Custom parameter names that make a safe XML element name (REST callers choose them).
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


def check_names(params: dict[str, Any], field: str = "base") -> None:
    """:class:`InvalidError` unless every (nested) custom key is a plain element
    name: they become ``extraParams`` children, and domish writes names raw."""
    for key, value in params.items():
        if not isinstance(key, str) or not NAME.fullmatch(key):
            raise InvalidError(f"{key!r} is not a valid parameter name", field)
        if isinstance(value, dict):
            check_names(value, field)


def _add_value(parent: domish.Element, name: str, value: Any) -> None:
    """A custom parameter as an element; objects as nested elements (§4.5)."""
    if not NAME.fullmatch(str(name)):
        return  # never write a raw, caller-chosen name that is no element name
    child = parent.addElement(name)
    if isinstance(value, dict):
        for key, item in value.items():
            _add_value(child, str(key), item)
    elif value is not None:
        child.addContent(str(value))


def _message(kind: str, sender: str, to: str, stanza_id: str | None = None) -> domish.Element:
    msg = domish.Element((NS_CLIENT, "message"))
    msg["type"], msg["from"], msg["to"] = kind, sender, to
    if stanza_id:
        msg["id"] = stanza_id
    return msg


def saved_stanza(view: dict[str, Any], sender: str, to: str, kind: str = "chat") -> domish.Element:
    """A stored Message (§5.2 object) as the ``type='chat'`` stanza a client's saved
    message is delivered as (§4.5; ``groupchat`` in a room, issue 5): body,
    ``extraParams`` with ``save_to_history``, the stored
    ``dialog_id``/``message_id``/``date_sent``, custom parameters and
    ``<attachment/>`` elements."""
    msg = _message(kind, sender, to, view["_id"])
    if view.get("message") is not None:
        msg.addElement("body", content=str(view["message"]))
    extra = msg.addElement((NS_CLIENT, "extraParams"))
    extra.addElement("save_to_history", content="1")
    skip = {"_id", "chat_dialog_id", "message", "date_sent", "sender_id", "recipient_id"}
    skip |= {"read_ids", "delivered_ids", "attachments", "read", "created_at", "updated_at"}
    skip |= {"reactions"}
    for key, value in view.items():
        if key not in skip and key not in RESERVED:
            _add_value(extra, key, value)
    for attachment in view.get("attachments") or []:
        element = extra.addElement("attachment")
        for key, value in attachment.items():
            if key in ATTACHMENT_KEYS and value is not None:
                element[key] = str(value)
    stamp(extra, view["chat_dialog_id"], view["_id"], view["date_sent"])
    return msg


def remove_stanza(dialog_id: str, message_id: str, sender: str, to: str) -> domish.Element:
    """The delete notification (§4.5): ``<remove xmlns='urn:xmpp:message-delete:0'
    id='{message_id}'/>`` and ``extraParams/dialog_id``, ``type='chat'``."""
    msg = _message("chat", sender, to)
    msg.addElement(("urn:xmpp:message-delete:0", "remove"))["id"] = message_id
    _dialog_extra(msg, dialog_id)
    return msg


def system_stanza(
    message_id: str, body: str | None, params: dict[str, Any], sender: str, to: str
) -> domish.Element:
    """A system message (§4.5): ``type='headline'`` with
    ``extraParams/moduleIdentifier=SystemNotifications`` and the custom parameters."""
    msg = _message("headline", sender, to, message_id)
    if body is not None:
        msg.addElement("body", content=body)
    extra = msg.addElement((NS_CLIENT, "extraParams"))
    for key, value in params.items():
        _add_value(extra, key, value)
    return msg


def _dialog_extra(msg: domish.Element, dialog_id: str) -> None:
    msg.addElement((NS_CLIENT, "extraParams")).addElement("dialog_id", content=dialog_id)


def edit_stanza(
    dialog_id: str, message_id: str, text: str, last: bool, sender: str, to: str, stanza_id: str
) -> domish.Element:
    """The edit notification (§4.5): the new ``<body>``, ``<replace
    xmlns='urn:xmpp:message-correct:0' id='{message_id}' last='true|false'/>``
    (XEP-0308 0.x; ``last``: the dialog's last message) and ``extraParams/dialog_id``."""
    msg = _message("chat", sender, to, stanza_id)
    msg.addElement("body", content=text)
    replace = msg.addElement(("urn:xmpp:message-correct:0", "replace"))
    replace["id"], replace["last"] = message_id, "true" if last else "false"
    _dialog_extra(msg, dialog_id)
    return msg


def reactions_stanza(
    dialog_id: str,
    message_id: str,
    user_id: int,
    changes: list[tuple[str, str]],
    sender: str,
    to: str,
    stanza_id: str,
) -> domish.Element:
    """The server-made reactions notification (§4.5; ConnectyCube's, no XEP):
    ``<reactions message_id user_id>`` with a ``<reaction add='true'|remove='true'
    type='{reaction}'/>`` per change (``changes``: ``[("add"|"remove", reaction)]``),
    in the stanza's namespace as the SDK reads it, and ``extraParams/dialog_id``."""
    msg = _message("chat", sender, to, stanza_id)
    element = msg.addElement("reactions")
    element["message_id"], element["user_id"] = message_id, str(user_id)
    for change, value in changes:
        item = element.addElement("reaction")
        item[change], item["type"] = "true", value
    _dialog_extra(msg, dialog_id)
    return msg
