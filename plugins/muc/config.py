"""XEP-0045 §10.2 room configuration (``muc#roomconfig``, an XEP-0004 form built by
hand) and §6.4 room information (disco#info features and the ``muc#roominfo`` form)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from twisted.words.xish import domish

from xmppd.errors import StanzaError

if TYPE_CHECKING:
    from plugins.muc.rooms import Room

NS_MUC = "http://jabber.org/protocol/muc"
NS_DATA = "jabber:x:data"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
ROOMCONFIG = NS_MUC + "#roomconfig"
ROOMINFO = NS_MUC + "#roominfo"


@dataclass
class RoomConfig:
    name: str = ""
    description: str = ""
    persistent: bool = False
    public: bool = True
    members_only: bool = False
    moderated: bool = False
    password_protected: bool = False
    password: str = ""
    max_users: int = 200
    whois: str = "moderators"  # §10.2: who may see real JIDs: "moderators" or "anyone"
    change_subject: bool = False  # participants may change the subject (§8.1)
    allow_invites: bool = False  # participants may invite to a members-only room (§7.8)


# (form var, RoomConfig field, XEP-0004 type, label); §10.2 and §15.5.3
FIELDS = (
    ("muc#roomconfig_roomname", "name", "text-single", "Room name"),
    ("muc#roomconfig_roomdesc", "description", "text-single", "Description"),
    ("muc#roomconfig_persistentroom", "persistent", "boolean", "Persistent room"),
    ("muc#roomconfig_publicroom", "public", "boolean", "Listed in the directory"),
    ("muc#roomconfig_membersonly", "members_only", "boolean", "Members only"),
    ("muc#roomconfig_moderatedroom", "moderated", "boolean", "Moderated"),
    ("muc#roomconfig_passwordprotectedroom", "password_protected", "boolean", "Password"),
    ("muc#roomconfig_roomsecret", "password", "text-private", "The password"),
    ("muc#roomconfig_maxusers", "max_users", "text-single", "Most occupants"),
    ("muc#roomconfig_whois", "whois", "list-single", "Who may see real JIDs"),
    ("muc#roomconfig_changesubject", "change_subject", "boolean", "Participants set subject"),
    ("muc#roomconfig_allowinvites", "allow_invites", "boolean", "Participants invite"),
)
BOOLEAN_TRUE = ("1", "true")


def field_element(form: domish.Element, var: str, kind: str, value: Any, label: str = "") -> None:
    element = form.addElement("field")
    element["var"], element["type"] = var, kind
    if label:
        element["label"] = label
    if isinstance(value, bool):
        value = "1" if value else "0"
    element.addElement("value", content=str(value))
    if var == "muc#roomconfig_whois":
        for option in ("moderators", "anyone"):
            element.addElement("option").addElement("value", content=option)


def config_form(room: Room) -> domish.Element:
    """§10.2: the form an owner fills in."""
    form = domish.Element((NS_DATA, "x"))
    form["type"] = "form"
    form.addElement("title", content=f"Configuration of {room.jid.full()}")
    field_element(form, "FORM_TYPE", "hidden", ROOMCONFIG)
    for var, name, kind, label in FIELDS:
        field_element(form, var, kind, getattr(room.config, name), label)
    return form


def apply_form(room: Room, form: domish.Element, max_users: int) -> None:
    """§10.2: apply a submitted form; a bad value is ``not-acceptable``, nothing changed."""
    values: dict[str, list[str]] = {}
    for element in form.elements(NS_DATA, "field"):
        values[element.getAttribute("var", "")] = [
            str(v) for v in element.elements(NS_DATA, "value")
        ]
    kinds = {f.name: f.type for f in fields(RoomConfig)}
    changes: dict[str, Any] = {}
    for var, name, _, _ in FIELDS:
        if var not in values:
            continue
        value = values[var][0] if values[var] else ""
        if kinds[name] == "bool":
            changes[name] = value.strip().lower() in BOOLEAN_TRUE
        elif kinds[name] == "int":
            try:
                changes[name] = int(value) if value not in ("", "none") else max_users
            except ValueError:
                raise StanzaError("not-acceptable", text=f"{var}: a number") from None
            if not 1 <= changes[name] <= max_users:
                raise StanzaError("not-acceptable", text=f"{var}: 1 to {max_users}")
        elif name == "whois" and value not in ("moderators", "anyone"):
            raise StanzaError("not-acceptable", text=f"{var}: moderators or anyone")
        else:
            changes[name] = value
    if changes.get("password_protected", room.config.password_protected) and not changes.get(
        "password", room.config.password
    ):
        raise StanzaError("not-acceptable", text="a password-protected room needs a password")
    for name, value in changes.items():
        setattr(room.config, name, value)


def room_info(room: Room, node: str | None) -> domish.Element:
    """§6.4: identity, features saying what the room is, and the roominfo form."""
    if node:
        raise StanzaError("item-not-found")
    c = room.config
    query = domish.Element((NS_DISCO_INFO, "query"))
    identity = query.addElement("identity")
    identity["category"], identity["type"], identity["name"] = "conference", "text", room.title
    features = [
        NS_DISCO_INFO,
        NS_MUC,
        "urn:xmpp:occupant-id:0",
        "muc_public" if c.public else "muc_hidden",
        "muc_membersonly" if c.members_only else "muc_open",
        "muc_moderated" if c.moderated else "muc_unmoderated",
        "muc_passwordprotected" if c.password_protected else "muc_unsecured",
        "muc_persistent" if c.persistent else "muc_temporary",
        "muc_nonanonymous" if c.whois == "anyone" else "muc_semianonymous",
    ]
    for var in features:
        query.addElement("feature")["var"] = var
    form = query.addElement((NS_DATA, "x"))
    form["type"] = "result"
    field_element(form, "FORM_TYPE", "hidden", ROOMINFO)
    field_element(form, "muc#roominfo_description", "text-single", c.description, "Description")
    field_element(form, "muc#roominfo_subject", "text-single", room.subject, "Subject")
    field_element(form, "muc#roominfo_occupants", "text-single", len(room.occupants), "Occupants")
    field_element(form, "muc#roomconfig_roomname", "text-single", c.name, "Room name")
    field_element(form, "muc#roominfo_changesubject", "boolean", c.change_subject)
    return query
