"""chat_api ``GET /chat/search.json`` (SDK-CONTRACT §5.3 ``chat.search``): the
caller's dialogs and the messages he may read, and the app's users, whose name,
text, login or full name contain ``search_text`` (case-insensitive, wildcards
escaped, bounded)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest_twisted

from tests.plugins.chat_api_support import NOW, app_session, cc, sign_up, user_session
from tests.plugins.chat_api_support import start as start_web
from tests.plugins.test_chat_api_messages import post


async def search(web, token, **params):
    r = await web.request("GET", f"/chat/search.json?{urlencode(params)}", headers=cc(token))
    assert r.code == 200, r.body
    found = r.json["results"]
    return (
        [d["name"] for d in found["dialogs"]],
        [m["message"] for m in found["messages"]],
        [u["login"] for u in found["users"]],
    )


async def dialog(web, token, **body):
    r = await web.request("POST", "/chat/Dialog.json", json_body=body, headers=cc(token))
    assert r.code == 201, r.body
    return r.json


@pytest_twisted.ensureDeferred
async def test_search_dialogs_messages_and_users(tmp_path, db_url):
    """Only what the caller may see: his dialogs and public ones (not another pair's
    private dialog), messages not hidden for him; users by login or full name; LIKE
    wildcards in the text are literal; dates, chat_dialog_ids and limit narrow."""
    web = await start_web(tmp_path, db_url)
    try:
        app_token = await app_session(web)
        ids = {}
        for login, full_name in (("ann", "Ann Alpha"), ("bob", "Bob"), ("cat", "Cat Alphabet")):
            ids[login] = (await sign_up(web, app_token, login, full_name=full_name))["id"]
        tok = {login: await user_session(web, login) for login in ids}
        team = await dialog(
            web, tok["ann"], type=2, name="Alpha team", occupants_ids=f"{ids['bob']}"
        )
        await dialog(web, tok["cat"], type=1, name="ALPHA public")
        secret = await dialog(web, tok["cat"], type=2, name="alpha secret", occupants_ids="")
        private = await dialog(web, tok["ann"], type=3, occupants_ids=f"{ids['bob']}")
        await post(web, tok["ann"], team["_id"], "alpha one")
        hidden = await post(web, tok["bob"], team["_id"], "ALPHA two")
        await post(web, tok["cat"], secret["_id"], "alpha in secret")
        await post(web, tok["ann"], private["_id"], "100% alpha_x")
        await post(web, tok["ann"], private["_id"], "1000 alphaxx")
        r = await web.request(
            "DELETE", f"/chat/Message/{hidden['_id']}.json", headers=cc(tok["bob"])
        )
        assert r.code == 200

        dialogs, messages, users = await search(web, tok["bob"], search_text="alpha")
        assert sorted(dialogs) == ["ALPHA public", "Alpha team"]
        assert messages == ["1000 alphaxx", "100% alpha_x", "alpha one"]  # newest first
        assert users == ["ann", "cat"]
        assert (await search(web, tok["ann"], search_text="ALPHA two"))[1] == ["ALPHA two"]
        assert (await search(web, tok["bob"], search_text="0% al"))[1] == ["100% alpha_x"]
        assert (await search(web, tok["bob"], search_text="ha_x"))[1] == ["100% alpha_x"]
        assert await search(web, tok["bob"], search_text="secret") == ([], [], [])

        narrowed = await search(
            web,
            tok["bob"],
            search_text="alpha",
            chat_dialog_ids=f"{private['_id']},{secret['_id']}",
        )
        assert narrowed[:2] == ([], ["1000 alphaxx", "100% alpha_x"])
        window = await search(
            web,
            tok["bob"],
            search_text="alpha",
            start_date="2027-01-15T08:00:01Z",  # NOW + 1: the clock moves 1 s per post
            end_date=str(NOW + 4),
        )
        assert window[1] == ["100% alpha_x", "alpha one"]
        assert (await search(web, tok["bob"], search_text="alpha", limit=1))[1:] == (
            ["1000 alphaxx"],
            ["ann"],
        )

        for params in ({}, {"search_text": "al"}, {"search_text": "alpha", "start_date": "soon"}):
            r = await web.request(
                "GET", f"/chat/search.json?{urlencode(params)}", headers=cc(tok["bob"])
            )
            assert r.code == 422, (params, r.body)
        r = await web.request("GET", "/chat/search.json?search_text=alpha", headers=cc(app_token))
        assert r.code == 403
    finally:
        await web.stop()
