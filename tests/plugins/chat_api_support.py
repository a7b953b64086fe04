"""Shared steps of the chat_api tests: a server with the plugin on an HTTP
listener, and the calls an SDK makes to get a session."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from tests.webclient import Web

NOW = 1_800_000_000  # the plugin's clock (task.Clock) is set here


@defer.inlineCallbacks
def start(tmp_path: Any, db_url: str | None = None, also: tuple[str, ...] = (), **options: Any):
    """A Web with chat_api (and the plugins in ``also``) enabled, on ``db_url``,
    else SQLite; ``web.app`` is the harness's application."""
    enabled = ["dialogs", "chat_api", *also]
    plugins = {"enabled": enabled, **({"chat_api": options} if options else {})}
    storage = {"storage": {"url": db_url}} if db_url else {}
    web = yield Web.start(tmp_path, plugins=plugins, **storage)
    web.h.clock.advance(NOW)
    web.app = yield web.h.accounts.get_app(web.h.app_id)
    return web


@defer.inlineCallbacks
def app_session(web: Web, app: Any = None):
    """ConnectyCube 6 (SDK-CONTRACT §3.1): an application session's token."""
    app = app or web.app
    r = yield web.request(
        "POST", "/session.json", json_body={"application_id": str(app.id), "auth_key": app.auth_key}
    )
    assert r.code == 201, r.body
    return r.json["session"]["token"]


@defer.inlineCallbacks
def sign_up(web: Web, token: str, login: str, password: str = "password1", **fields: Any):
    """§3.1 sign-up with an application session; returns the User object."""
    user = {"login": login, "password": password, **fields}
    r = yield web.request("POST", "/users.json", json_body={"user": user}, headers=cc(token))
    assert r.code == 201, r.body
    return r.json["user"]


@defer.inlineCallbacks
def user_session(web: Web, login: str, password: str = "password1", app: Any = None):
    """An application session upgraded by ``POST /login.json``; returns its token."""
    token = yield app_session(web, app)
    r = yield web.request(
        "POST", "/login.json", json_body={"login": login, "password": password}, headers=cc(token)
    )
    assert r.code == 200, r.body
    return token


def cc(token: str) -> dict[str, str]:
    return {"CB-Token": token}


def qb(token: str) -> dict[str, str]:
    return {"QB-Token": token}
