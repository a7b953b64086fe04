"""The core HTTP site (xmppd/http.py): plugin mounts, JSON 404, path
normalisation before dispatch, the body size bound, plain and TLS listeners."""

from __future__ import annotations

import json
import socket

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.web import resource

from tests.webclient import Web
from xmppd.config import parse_config
from xmppd.http import PathError, normalise_path
from xmppd.service import Server, XmppService


class Echo(resource.Resource):
    """Answers the decoded rest of the path and the body length."""

    isLeaf = True

    def render(self, request):
        request.content.seek(0)
        body = request.content.read()
        rest = [s.decode() for s in request.postpath]
        return json.dumps({"rest": rest, "length": len(body)}).encode()


@pytest_twisted.inlineCallbacks
def test_mounted_resource_gets_decoded_rest_unknown_path_is_404_json(tmp_path):
    """A plugin mounts on a prefix; anything unmounted is 404 {"errors": ["Not found"]}."""
    web = yield Web.start(tmp_path)
    try:
        web.h.server.http.mount("/echo", Echo())
        r = yield web.request("GET", "/echo/a%5Bb%5D/c.json")
        assert (r.code, r.json["rest"]) == (200, ["a[b]", "c.json"])
        r = yield web.request("GET", "/nothing.json")
        assert (r.code, r.json) == (404, {"errors": ["Not found"]})
        assert r.header("content-type").startswith("application/json")
    finally:
        yield web.stop()


@pytest_twisted.inlineCallbacks
def test_encoded_dot_segments_are_refused_not_routed(tmp_path):
    """CVE-2023-32315: a percent-encoded '..' or '/' never reaches a mount by prefix."""
    web = yield Web.start(tmp_path)
    try:
        web.h.server.http.mount("/echo", Echo())
        for path in ("/echo/%2e%2e/admin", "/echo/a%2Fb", "/x/%2E%2E/echo", "/echo/%5C"):
            r = yield web.request("GET", path)
            assert (r.code, r.json) == (400, {"errors": ["Bad path"]}), path
    finally:
        yield web.stop()


@pytest.mark.parametrize(
    ("raw", "segments"),
    [(b"/", ()), (b"//a//b/", ("a", "b")), (b"/a%20b", ("a b",)), (b"/%E2%9C%93", ("\u2713",))],
)
def test_normalise_path(raw, segments):
    """Decoded segments, empty ones dropped."""
    assert normalise_path(raw) == segments


@pytest.mark.parametrize("raw", [b"/..", b"/a/./b", b"/%2e", b"/a%2fb", b"/%ff", b"/a%00"])
def test_normalise_path_refuses(raw):
    """Dot segments, encoded separators, control characters and bad UTF-8 are errors."""
    with pytest.raises(PathError):
        normalise_path(raw)


@pytest_twisted.inlineCallbacks
def test_body_over_the_bound_is_413(tmp_path):
    """[http] max_body_size: a larger body is 413, without being kept."""
    web = yield Web.start(tmp_path, http={"max_body_size": 1024})
    try:
        web.h.server.http.mount("/echo", Echo())
        r = yield web.request("POST", "/echo", body=b"x" * 1024)
        assert (r.code, r.json["length"]) == (200, 1024)
        r = yield web.request("POST", "/echo", body=b"x" * 1025)
        assert (r.code, r.json) == (413, {"errors": ["Request body too large"]})
    finally:
        yield web.stop()


@pytest_twisted.inlineCallbacks
def test_a_mount_may_have_its_own_body_cap(tmp_path):
    """``mount(..., max_body_size=N)``: that prefix (and below) takes N bytes; the
    rest of the site, a shorter prefix included, keeps [http] max_body_size."""
    web = yield Web.start(tmp_path, http={"max_body_size": 1024})
    try:
        web.h.server.http.mount("/echo", Echo())
        web.h.server.http.mount("/echo/big", Echo(), max_body_size=4096)
        r = yield web.request("POST", "/echo/big/x?a=1", body=b"x" * 4096)
        assert (r.code, r.json["length"]) == (200, 4096)
        r = yield web.request("POST", "/echo/big/x", body=b"x" * 4097)
        assert r.code == 413
        r = yield web.request("POST", "/echo/bigger", body=b"x" * 1025)
        assert r.code == 413
        r = yield web.request("POST", "/echo", body=b"x" * 2048)
        assert r.code == 413
    finally:
        yield web.stop()


@pytest_twisted.inlineCallbacks
def test_tls_listener_serves_the_same_site(tmp_path):
    """The HTTPS listener uses the c2s certificate ([tls]) and the same mounts."""
    web = yield Web.start(tmp_path)
    try:
        web.h.server.http.mount("/echo", Echo())
        r = yield web.request("GET", "/echo/x", tls=True)
        assert (r.code, r.json["rest"]) == (200, ["x"])
    finally:
        yield web.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest_twisted.inlineCallbacks
def test_service_starts_and_stops_the_http_listener(tmp_path):
    """XmppService listens on http.port next to c2s and stops listening on stop."""
    port = _free_port()
    config = parse_config(
        {
            "c2s": {"port": 0, "tls_port": 0},
            "http": {"port": port, "tls_port": 0},
            "storage": {"url": f"sqlite:///{tmp_path}/x.sqlite3"},
        },
        base_dir=str(tmp_path),
    )
    server = Server(config, reactor=reactor)
    server.db.migrate()
    service = XmppService(server)
    yield service.startService()
    try:
        [listening] = service.ports
        assert listening.getHost().port == port
    finally:
        yield service.stopService()
    assert service.ports == []
