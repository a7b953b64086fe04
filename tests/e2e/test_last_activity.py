"""Last activity (XEP-0012) and ConnectyCube's status streaming against a real
``twistd xmppd``: slixmpp's xep_0012 as the other side, the SDK's exact subscribe
stanza sent raw (SDK-CONTRACT §4.8)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from slixmpp import Iq
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from .conftest import DOMAIN, Client, XmppServer, run, session

pytestmark = pytest.mark.e2e

NS_LAST = "jabber:iq:last"
NS_STATUS = "https://connectycube.com/protocol/status_streaming"


@pytest.fixture(scope="module")
def server_config() -> dict[str, Any]:
    return {"plugins": {"enabled": ["disco", "ping", "privacy", "last_activity"]}}


@pytest.fixture(scope="module")
def server_users() -> tuple[str, ...]:
    return ("alice", "bob", "heidi")


def raw_iq(client: Client, xml: str) -> Iq:
    """An IQ exactly as written (the SDK's stanzas), ready to ``send()``."""
    return client.Iq(xml=ET.fromstring(xml.replace("<iq ", "<iq xmlns='jabber:client' ", 1)))


def test_last_activity_with_slixmpp_and_status_streaming(server: XmppServer) -> None:
    """XEP-0012 §3, §5 with slixmpp's xep_0012: 0 while online, seconds since logout
    with the status after; the server's uptime. SDK-CONTRACT §4.8: a status
    streaming subscriber gets seconds 0 when the user comes online, >0 when he goes."""

    async def scenario() -> None:
        async with session(server, "heidi", plugins=("xep_0012",)) as heidi:
            pushes: list[Any] = []
            heidi.register_handler(
                Callback(
                    "status streaming",
                    MatchXPath(f"{{jabber:client}}iq/{{{NS_LAST}}}query"),
                    lambda iq: iq["id"].startswith("status-") and pushes.append(iq),
                )
            )
            uptime = await heidi.plugin["xep_0012"].get_last_activity(DOMAIN, timeout=10)
            assert uptime["last_activity"]["seconds"] >= 0
            alice_jid = server.users["alice"].jid
            subscribe = (
                f'<iq type="set" id="e2e:statusStreaming"><subscribe xmlns="{NS_STATUS}"'
                f' user_jid="{alice_jid}" enable="true"/></iq>'
            )
            await raw_iq(heidi, subscribe).send(timeout=10)
            async with session(server, "alice") as alice:
                alice.send_presence()
                await alice.expect("presence", lambda p: p["from"] == alice.boundjid)
                answer = await heidi.plugin["xep_0012"].get_last_activity(alice_jid, timeout=10)
                assert answer["last_activity"]["seconds"] == 0
                alice.send_presence(ptype="unavailable", pstatus="gone fishing")
                await asyncio.sleep(0.3)
            answer = await heidi.plugin["xep_0012"].get_last_activity(alice_jid, timeout=10)
            assert answer["last_activity"]["seconds"] >= 0
            assert answer["last_activity"]["status"] == "gone fishing"
            for _ in range(50):
                if len(pushes) >= 2:
                    break
                await asyncio.sleep(0.1)
            assert [str(p["from"]) for p in pushes][:2] == [alice_jid, alice_jid]
            assert int(pushes[0].xml.find(f"{{{NS_LAST}}}query").get("seconds")) == 0
            assert int(pushes[1].xml.find(f"{{{NS_LAST}}}query").get("seconds")) > 0

    run(scenario())


def test_refusals_blocked_and_unknown(server: XmppServer) -> None:
    """XEP-0012 §8 under XEP-0016: alice's default list hides her presence from bob,
    so bob's question is 'forbidden' and so is his status-streaming subscription; a
    user who does not exist is 'service-unavailable' (RFC 6121 §8.5.1)."""

    async def scenario() -> None:
        alice_jid, bob_jid = server.users["alice"].jid, server.users["bob"].jid
        async with session(server, "alice") as alice:
            privacy = (
                "<iq type='set' id='l1'><query xmlns='jabber:iq:privacy'><list name='hide'>"
                f"<item type='jid' value='{bob_jid}' action='deny' order='1'><presence-out/></item>"
                "</list></query></iq>"
            )
            await raw_iq(alice, privacy).send(timeout=10)
            default = (
                "<iq type='set' id='l2'><query xmlns='jabber:iq:privacy'>"
                "<default name='hide'/></query></iq>"
            )
            await raw_iq(alice, default).send(timeout=10)
            async with session(server, "bob", plugins=("xep_0012",)) as bob:
                with pytest.raises(IqError) as refused:
                    await bob.plugin["xep_0012"].get_last_activity(alice_jid, timeout=10)
                assert refused.value.condition == "forbidden"
                watch = (
                    f'<iq type="set" id="b:statusStreaming"><subscribe xmlns="{NS_STATUS}"'
                    f' user_jid="{alice_jid}" enable="true"/></iq>'
                )
                with pytest.raises(IqError) as refused:
                    await raw_iq(bob, watch).send(timeout=10)
                assert refused.value.condition == "forbidden"
                nobody = f"999999-{server.app_id}@{DOMAIN}"
                with pytest.raises(IqError) as refused:
                    await bob.plugin["xep_0012"].get_last_activity(nobody, timeout=10)
                assert refused.value.condition == "service-unavailable"

    run(scenario())
