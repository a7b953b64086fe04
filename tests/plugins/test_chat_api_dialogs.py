"""chat_api ``/chat/Dialog`` (SDK-CONTRACT §5.1, §2) through a real HTTP listener:
shapes the SDKs read, JSON and form bodies, permissions, filters and paging,
several-ids delete, app isolation."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.plugins.chat_api_support import app_session, cc, qb, sign_up, start, user_session

HEX24 = set("0123456789abcdef")


async def people(web, *logins):
    """Sign each login up; return ({login: id}, {login: token})."""
    app_token = await app_session(web)
    ids = {n: (await sign_up(web, app_token, n))["id"] for n in logins}
    tokens = {n: await user_session(web, n) for n in logins}
    return ids, tokens


@pytest_twisted.ensureDeferred
async def test_create_shapes_private_dedup_and_group_name(tmp_path, db_url):
    """§5.1 dialog.create: occupants as a ", "-joined string; the Dialog object's
    fields; a pair's private dialog is returned again (200); a group needs a name;
    an application session is refused (403)."""
    web = await start(tmp_path, db_url)
    try:
        ids, tok = await people(web, "ann", "bob", "cat")
        body = {
            "type": 2,
            "name": "Team",
            "occupants_ids": f"{ids['bob']}, {ids['cat']}",
            "photo": "p.png",
        }
        r = await web.request("POST", "/chat/Dialog.json", json_body=body, headers=cc(tok["ann"]))
        assert r.code == 201, r.body
        d = r.json
        assert len(d["_id"]) == 24 and set(d["_id"]) <= HEX24 and not d["_id"].isdigit()
        assert (d["type"], d["name"], d["user_id"], d["photo"]) == (2, "Team", ids["ann"], "p.png")
        assert (
            d["occupants_ids"] == [ids["ann"], ids["bob"], ids["cat"]] and d["occupants_count"] == 3
        )
        assert d["xmpp_room_jid"] == f"{web.app.id}_{d['_id']}@muc.{web.h.server.domain}"
        for key in (
            "last_message",
            "last_message_date_sent",
            "last_message_id",
            "last_message_user_id",
            "last_message_status",
        ):
            assert d[key] is None
        assert (
            d["unread_messages_count"] == 0
            and d["admins_ids"] == []
            and d["pinned_messages_ids"] == []
        )
        assert d["created_at"].endswith("Z") and d["updated_at"] == d["created_at"]
        r = await web.request(
            "POST",
            "/chat/Dialog.json",
            json_body={"type": 2, "occupants_ids": "1"},
            headers=cc(tok["ann"]),
        )
        assert (r.code, r.json) == (422, {"errors": {"name": ["can't be blank"]}})
        form = {"type": "3", "occupants_ids": str(ids["bob"])}  # QuickBlox: form-encoded
        r = await web.request("POST", "/chat/Dialog.json", form=form, headers=qb(tok["ann"]))
        assert r.code == 201 and r.json["xmpp_room_jid"] is None
        private = r.json["_id"]
        r = await web.request(
            "POST",
            "/chat/Dialog.json",
            json_body={"type": 3, "occupants_ids": str(ids["ann"])},
            headers=cc(tok["bob"]),
        )
        assert (r.code, r.json["_id"]) == (200, private)
        r = await web.request(
            "POST", "/chat/Dialog.json", json_body=body, headers=cc(await app_session(web))
        )
        assert r.code == 403
        r = await web.request("GET", "/chat/Dialog.json")
        assert (r.code, r.json) == (401, {"errors": {"base": ["Required session does not exist"]}})
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_update_permissions_and_admins(tmp_path):
    """§5.1 dialog.update/addAdmins: any occupant adds; only himself removed by an
    occupant; the owner removes others and sets up to 5 admins; a user of the app
    who is not an occupant gets 403; a public dialog is updated by its owner only."""
    web = await start(tmp_path)
    try:
        names = ("o", "p", "q", "r", "s", "t", "u", "v")
        ids, tok = await people(web, *names)
        members = ", ".join(str(ids[n]) for n in names[1:7])
        r = await web.request(
            "POST",
            "/chat/Dialog.json",
            json_body={"type": 2, "name": "G", "occupants_ids": members},
            headers=cc(tok["o"]),
        )
        url = f"/chat/Dialog/{r.json['_id']}.json"
        r = await web.request(
            "PUT",
            url,
            json_body={"push_all": {"occupants_ids": [ids["v"]]}, "name": "G2"},
            headers=cc(tok["p"]),
        )
        assert r.code == 200 and ids["v"] in r.json["occupants_ids"] and r.json["name"] == "G2"
        r = await web.request(
            "PUT", url, json_body={"pull_all": {"occupants_ids": [ids["q"]]}}, headers=cc(tok["p"])
        )
        assert r.code == 403
        r = await web.request(
            "PUT", url, json_body={"pull_all": {"occupants_ids": [ids["p"]]}}, headers=cc(tok["p"])
        )
        assert r.code == 200 and ids["p"] not in r.json["occupants_ids"]
        r = await web.request("PUT", url, json_body={"name": "mine"}, headers=cc(tok["p"]))
        assert r.code == 403  # no longer an occupant
        admins = url.replace(".json", "/admins.json")
        five = [ids[n] for n in ("q", "r", "s", "t", "u")]
        r = await web.request(
            "PUT", admins, json_body={"push_all": {"admins_ids": five}}, headers=cc(tok["q"])
        )
        assert r.code == 403
        r = await web.request(
            "PUT", admins, json_body={"push_all": {"admins_ids": five}}, headers=cc(tok["o"])
        )
        assert r.code == 200 and sorted(r.json["admins_ids"]) == sorted(five)
        r = await web.request(
            "PUT", admins, json_body={"push_all": {"admins_ids": [ids["v"]]}}, headers=cc(tok["o"])
        )
        assert r.code == 422
        r = await web.request(
            "PUT", admins, form=[("pull_all[admins_ids][]", str(ids["q"]))], headers=qb(tok["o"])
        )
        assert r.code == 200 and ids["q"] not in r.json["admins_ids"]
        r = await web.request(
            "POST", "/chat/Dialog.json", json_body={"type": 1, "name": "Pub"}, headers=cc(tok["o"])
        )
        pub = f"/chat/Dialog/{r.json['_id']}.json"
        r = await web.request("PUT", pub, json_body={"description": "x"}, headers=cc(tok["q"]))
        assert r.code == 403
        r = await web.request("PUT", pub, json_body={"description": "x"}, headers=cc(tok["o"]))
        assert (r.code, r.json["description"]) == (200, "x")
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_list_filters_paging_count(tmp_path, db_url):
    """§5.1 dialog.list, §2 serializer: percent-encoded brackets, comma-joined
    in, limit/skip, sort, count=1 -> no items; {total_entries, skip, limit, items}."""
    web = await start(tmp_path, db_url)
    try:
        ids, tok = await people(web, "ann", "bob")
        made = []
        for i in range(4):
            web.h.clock.advance(10)
            body = {"type": 2, "name": f"n{i}", "occupants_ids": str(ids["bob"])}
            r = await web.request(
                "POST", "/chat/Dialog.json", json_body=body, headers=cc(tok["ann"])
            )
            made.append(r.json)
        r = await web.request("GET", "/chat/Dialog.json", headers=cc(tok["bob"]))
        assert (r.json["total_entries"], r.json["skip"], r.json["limit"]) == (4, 0, 100)
        assert [d["name"] for d in r.json["items"]] == ["n3", "n2", "n1", "n0"]
        query = f"_id%5Bin%5D={made[0]['_id']}%2C{made[2]['_id']}&sort_asc=name&limit=1&skip=1"
        r = await web.request("GET", f"/chat/Dialog.json?{query}", headers=cc(tok["bob"]))
        assert r.json["total_entries"] == 2 and [d["name"] for d in r.json["items"]] == ["n2"]
        since = made[1]["updated_at"]
        r = await web.request(
            "GET", f"/chat/Dialog.json?updated_at[gt]={since}&type=2", headers=cc(tok["bob"])
        )
        assert r.json["total_entries"] == 2
        r = await web.request("GET", "/chat/Dialog.json?count=1", headers=cc(tok["bob"]))
        assert (r.json["total_entries"], r.json["items_count"], r.json["items"]) == (4, 4, [])
        r = await web.request("GET", "/chat/Dialog.json?sort_desc=salt", headers=cc(tok["bob"]))
        assert r.code == 422
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_delete_one_and_several(tmp_path):
    """§5.1 dialog.delete: DELETE /chat/Dialog/{a,b}.json with a form body force=1;
    one id answers {} (or 404/403), several the three id lists."""
    web = await start(tmp_path)
    try:
        ids, tok = await people(web, "ann", "bob")
        made = []
        for name in ("a", "b"):
            r = await web.request(
                "POST",
                "/chat/Dialog.json",
                json_body={"type": 2, "name": name, "occupants_ids": str(ids["bob"])},
                headers=cc(tok["ann"]),
            )
            made.append(r.json["_id"])
        r = await web.request(
            "DELETE", f"/chat/Dialog/{made[0]}.json", form={"force": "1"}, headers=cc(tok["bob"])
        )
        assert r.code == 403
        missing = "0a" * 12
        r = await web.request("DELETE", f"/chat/Dialog/{missing}.json", headers=cc(tok["bob"]))
        assert r.code == 404
        r = await web.request(
            "DELETE",
            f"/chat/Dialog/{made[0]},{missing},{made[1]}.json",
            form={"force": "1"},
            headers=cc(tok["ann"]),
        )
        assert r.code == 200
        assert r.json == {
            "SuccessfullyDeleted": {"ids": made},
            "NotFound": {"ids": [missing]},
            "WrongPermissions": {"ids": []},
        }
        r = await web.request("GET", "/chat/Dialog.json", headers=cc(tok["bob"]))
        assert r.json["total_entries"] == 0
        r = await web.request(
            "POST",
            "/chat/Dialog.json",
            json_body={"type": 2, "name": "c", "occupants_ids": str(ids["bob"])},
            headers=cc(tok["ann"]),
        )
        r = await web.request(
            "DELETE", f"/chat/Dialog/{r.json['_id']}.json", headers=cc(tok["bob"])
        )
        assert (r.code, r.json) == (200, {})
        r = await web.request("GET", "/chat/Dialog.json", headers=cc(tok["bob"]))
        assert r.json["total_entries"] == 0
        r = await web.request("GET", "/chat/Dialog.json", headers=cc(tok["ann"]))
        assert r.json["total_entries"] == 1 and r.json["items"][0]["occupants_ids"] == [ids["ann"]]
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_public_subscribe_occupants_notifications(tmp_path):
    """§5.1 subscribe (POST, no body), unsubscribe, getPublicOccupants -> {items:
    [User]}, notifications {enabled: 1|0} -> {notifications: {enabled}}."""
    web = await start(tmp_path)
    try:
        ids, tok = await people(web, "ann", "bob", "cat")
        r = await web.request(
            "POST",
            "/chat/Dialog.json",
            json_body={"type": 1, "name": "Pub"},
            headers=cc(tok["ann"]),
        )
        base = f"/chat/Dialog/{r.json['_id']}"
        r = await web.request(
            "POST",
            f"{base}/subscribe.json",
            headers={**cc(tok["bob"]), "Content-Type": "application/json"},
        )
        assert r.code == 200 and r.json["occupants_ids"] == [ids["ann"], ids["bob"]]
        await web.request("POST", f"{base}/subscribe.json", headers=cc(tok["cat"]))
        r = await web.request(
            "GET", f"{base}/occupants.json?limit=2&skip=1", headers=cc(tok["cat"])
        )
        assert [u["login"] for u in r.json["items"]] == ["bob", "cat"]
        r = await web.request("DELETE", f"{base}/subscribe.json", headers=cc(tok["cat"]))
        assert (r.code, r.json) == (200, {})
        r = await web.request("GET", f"{base}/notifications.json", headers=cc(tok["bob"]))
        assert r.json == {"notifications": {"enabled": 1}}
        r = await web.request(
            "PUT", f"{base}/notifications.json", json_body={"enabled": 0}, headers=cc(tok["bob"])
        )
        assert r.json == {"notifications": {"enabled": 0}}
        r = await web.request("GET", f"{base}/notifications.json", headers=cc(tok["bob"]))
        assert r.json == {"notifications": {"enabled": 0}}
        r = await web.request("GET", f"{base}/notifications.json", headers=cc(tok["cat"]))
        assert r.code == 403  # unsubscribed: not an occupant
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_dialogs_of_another_app_are_not_found(tmp_path):
    """Dialogs are scoped to the session's application: another app's dialog is
    404 for every call (never 403), and never listed, even when public."""
    web = await start(tmp_path)
    try:
        ids, tok = await people(web, "ann", "bob")
        r = await web.request(
            "POST",
            "/chat/Dialog.json",
            json_body={"type": 1, "name": "Pub"},
            headers=cc(tok["ann"]),
        )
        base = f"/chat/Dialog/{r.json['_id']}"
        other_app = await web.h.accounts.create_app("other")
        await sign_up(web, await app_session(web, other_app), "eve")
        eve = cc(await user_session(web, "eve", app=other_app))
        for method, path, body in (
            ("PUT", f"{base}.json", {"name": "x"}),
            ("DELETE", f"{base}.json", None),
            ("POST", f"{base}/subscribe.json", None),
            ("GET", f"{base}/occupants.json", None),
            ("GET", f"{base}/notifications.json", None),
            ("PUT", f"{base}/admins.json", {"push_all": {"admins_ids": [1]}}),
        ):
            r = await web.request(method, path, json_body=body, headers=eve)
            assert r.code == 404, (method, path, r.body)
        r = await web.request("GET", "/chat/Dialog.json", headers=eve)
        assert r.json["total_entries"] == 0
        body = {"type": 2, "name": "G", "occupants_ids": str(ids["bob"])}
        r = await web.request("POST", "/chat/Dialog.json", json_body=body, headers=eve)
        assert r.code == 422  # bob is not a user of eve's app
    finally:
        await web.stop()


def test_chat_api_needs_the_dialogs_plugin():
    """docs/dialogs.md: chat_api declares depends = ("dialogs",); enabling it alone
    stops start-up with one line; both resolve through their entry points."""
    from plugins.chat_api import ChatApi
    from plugins.dialogs import Dialogs
    from xmppd.config import ConfigError, parse_config
    from xmppd.registry import load_classes, resolve

    assert resolve("dialogs") is Dialogs
    with pytest.raises(ConfigError, match="'chat_api' depends on 'dialogs'"):
        load_classes(parse_config({"plugins": {"enabled": ["chat_api"]}}))
    assert load_classes(parse_config({"plugins": {"enabled": ["chat_api", "dialogs"]}})) == [
        Dialogs,
        ChatApi,
    ]
