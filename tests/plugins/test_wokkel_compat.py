"""The wokkel compatibility door still opens on the installed Twisted."""

from twisted.words.xish import domish

from plugins.common.wokkel_compat import data_form


def test_data_form_round_trips_a_form():
    """XEP-0004 §3: a form with typed fields parses back to the same values."""
    form = data_form.Form(
        "form",
        formNamespace="http://jabber.org/protocol/muc#roomconfig",
        fields=[
            data_form.Field("boolean", var="muc#roomconfig_persistentroom", value=True),
            data_form.Field("text-single", var="muc#roomconfig_roomname", value="Lobby"),
            data_form.Field("list-multi", var="roles", values=["moderator", "participant"]),
        ],
    )
    element = form.toElement()
    assert isinstance(element, domish.Element) and element.uri == "jabber:x:data"
    parsed = data_form.Form.fromElement(element)
    parsed.typeCheck({"muc#roomconfig_persistentroom": {"type": "boolean"}})
    values = parsed.getValues()
    assert parsed.formNamespace == "http://jabber.org/protocol/muc#roomconfig"
    assert values["muc#roomconfig_roomname"] == "Lobby"
    assert values["roles"] == ["moderator", "participant"]
    assert values["muc#roomconfig_persistentroom"] is True


def test_core_does_not_import_wokkel():
    """The core stays free of wokkel: only plugins go through this module."""
    import pathlib

    core = pathlib.Path(__file__).resolve().parents[2] / "xmppd"
    offenders = [p for p in core.rglob("*.py") if "wokkel" in p.read_text()]
    assert offenders == []
