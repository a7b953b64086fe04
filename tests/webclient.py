"""HTTP requests from tests: ``twisted.web.client.Agent`` against a real listener
on an ephemeral loopback port, plain or TLS (trusting the server's certificate)."""

from __future__ import annotations

import json
import os
from io import BytesIO
from typing import Any
from urllib.parse import urlencode

from twisted.internet import defer, endpoints, protocol, reactor, ssl
from twisted.web.client import Agent, FileBodyProducer, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from tests.harness import DOMAIN, Harness
from xmppd.stream.tls import self_signed


@implementer(IPolicyForHTTPS)
class TrustServer:
    """Trust exactly the test server's certificate, for its domain."""

    def __init__(self, cert_path: str) -> None:
        with open(cert_path, "rb") as f:
            self.root = ssl.Certificate.loadPEM(f.read())

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return ssl.optionsForClientTLS(DOMAIN, trustRoot=self.root)


class _Collect(protocol.Protocol):
    """Reads a response body (``readBody`` warns about Agent's transport proxy)."""

    def __init__(self, done: defer.Deferred) -> None:
        self.done = done
        self.chunks: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason: Any) -> None:
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.chunks))
        else:
            self.done.errback(reason)


class Response:
    def __init__(self, code: int, headers: Headers, body: bytes) -> None:
        self.code = code
        self.headers = headers
        self.body = body

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None


class Web:
    """A harness server with its HTTP site listening on 127.0.0.1:0 (and TLS)."""

    def __init__(self, h: Harness, port: Any, tls_port: Any, cert: str) -> None:
        self.h = h
        self.port = port
        self.tls_port = tls_port
        self.agent = Agent(reactor)
        self.tls_agent = Agent(reactor, contextFactory=TrustServer(cert))

    @classmethod
    @defer.inlineCallbacks
    def start(cls, tmp_path: Any, **sections: Any):
        h = yield Harness.start(tmp_path, **sections)
        site = h.server.http
        plain = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        port = yield plain.listen(site)
        secure = endpoints.SSL4ServerEndpoint(reactor, 0, h.server.tls, interface="127.0.0.1")
        tls_port = yield secure.listen(site)
        cert, _ = self_signed(DOMAIN, os.path.join(h.server.var_dir, "tls"))
        return cls(h, port, tls_port, cert)

    @defer.inlineCallbacks
    def stop(self):
        yield self.port.stopListening()
        yield self.tls_port.stopListening()
        yield self.h.stop()

    def url(self, path: str, tls: bool = False) -> bytes:
        port = (self.tls_port if tls else self.port).getHost().port
        scheme = "https" if tls else "http"
        return f"{scheme}://127.0.0.1:{port}{path}".encode()

    @defer.inlineCallbacks
    def request(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        form: Any = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        tls: bool = False,
    ):
        """Send one request; ``json_body`` or ``form`` (dict or pairs) set the body."""
        raw = Headers({k: [v] for k, v in (headers or {}).items()})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            raw.setRawHeaders("content-type", ["application/json;charset=utf-8"])
        elif form is not None:
            body = urlencode(form).encode()
            raw.setRawHeaders("content-type", ["application/x-www-form-urlencoded"])
        producer = FileBodyProducer(BytesIO(body)) if body is not None else None
        agent = self.tls_agent if tls else self.agent
        response = yield agent.request(method.encode(), self.url(path, tls), raw, producer)
        done: defer.Deferred = defer.Deferred()
        response.deliverBody(_Collect(done))
        data = yield done
        return Response(response.code, response.headers, data)
