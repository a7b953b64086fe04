"""The HTTP service: one ``twisted.web`` site for the REST API (and, later, the
WebSocket and BOSH transports), on a plain and a TLS listener (``[http]``).

The core serves nothing itself; plugins mount resources on path prefixes through
``ctx.http.mount("/chat", resource)``, so adding an endpoint never edits the core.
The root decodes and normalises the path *before* choosing a resource: a
percent-encoded ``..``, ``/`` or ``\\`` is refused, never interpreted (the
Openfire admin-console bypass, CVE-2023-32315, matched prefixes on the raw path).
A mounted resource is rendered with ``request.postpath`` set to the decoded
segments after its prefix (as bytes, as twisted.web expects).

Request bodies are capped at ``[http] max_body_size``; a mount may set its own,
larger cap (``mount(prefix, child, max_body_size=N)``, e.g. blob uploads), which
applies to its prefix only. Bodies are left to the resource to parse: twisted.web
does not read multipart forms into memory itself.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from twisted.internet import endpoints
from twisted.web import resource, server

__all__ = ["HttpSite", "http_endpoints", "json_error", "normalise_path"]

MAX_BODY_SIZE = 1_048_576  # bytes of request body accepted; beyond: 413


class PathError(ValueError):
    """A path that decodes to something unsafe or ambiguous."""


def normalise_path(raw: bytes) -> tuple[str, ...]:
    """``b"/a/b%5Bc%5D/"`` -> ``("a", "b[c]")``: decoded segments, empty ones
    dropped. Raises :class:`PathError` for ``.``/``..``, an encoded ``/`` or
    ``\\``, a control character or undecodable UTF-8."""
    segments = []
    for part in raw.split(b"/"):
        try:
            text = unquote(part.decode("ascii"), errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise PathError("bad encoding") from None
        if text in (".", "..") or any(c in text for c in "/\\") or not text.isprintable():
            if text:
                raise PathError(f"unsafe segment {text!r}")
        if text:
            segments.append(text)
    return tuple(segments)


def json_error(request: server.Request, code: int, errors: Any) -> bytes:
    """Set ``code`` and answer ``{"errors": errors}`` (the hosted APIs' error shape)."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    return json.dumps({"errors": errors}).encode()


class Root(resource.Resource):
    """Dispatches on the decoded path to the resource mounted on its longest prefix."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.mounts: dict[tuple[str, ...], resource.IResource] = {}
        self.body_limits: dict[tuple[str, ...], int] = {}

    def mount(
        self, prefix: str, child: resource.IResource, max_body_size: int | None = None
    ) -> None:
        key = normalise_path(prefix.encode())
        if not key:
            raise ValueError("cannot mount on /")
        if key in self.mounts:
            raise ValueError(f"{prefix!r} is already mounted")
        self.mounts[key] = child
        if max_body_size is not None:
            self.body_limits[key] = max_body_size

    def body_limit(self, raw_path: bytes, default: int) -> int:
        """The body cap of the mount serving ``raw_path``: its own, else ``default``."""
        try:
            path = normalise_path(raw_path.split(b"?", 1)[0])
        except PathError:
            return default
        for n in range(len(path), 0, -1):
            if path[:n] in self.mounts:
                return self.body_limits.get(path[:n], default)
        return default

    def render(self, request: server.Request) -> Any:
        if getattr(request, "too_big", False):
            return json_error(request, 413, ["Request body too large"])
        try:
            path = normalise_path(request.path)
        except PathError:
            return json_error(request, 400, ["Bad path"])
        for n in range(len(path), 0, -1):
            child = self.mounts.get(path[:n])
            if child is not None:
                request.prepath = [s.encode() for s in path[:n]]
                request.postpath = [s.encode() for s in path[n:]]
                return child.render(request)
        return json_error(request, 404, ["Not found"])


class BoundedRequest(server.Request):
    """A request whose body is cut off at its mount's cap (the site's
    ``max_body_size`` unless the mount set one): the rest is read and dropped
    (memory stays bounded) and the answer is 413."""

    too_big = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("parsePOSTFormSubmission", False)  # resources parse bodies
        super().__init__(*args, **kwargs)

    def gotLength(self, length: int | None) -> None:
        self.received = 0
        site = self.channel.site
        # The request line is known here, the rest of the request is not yet.
        self.max_body_size = site.root.body_limit(
            getattr(self.channel, "_path", b"") or b"", site.max_body_size
        )
        if length is not None and length > self.max_body_size:
            self.too_big = True
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > self.max_body_size:
            self.too_big = True
        if not self.too_big:
            super().handleContentChunk(data)


class HttpSite(server.Site):
    """The one site; ``mount`` is what plugins see as ``ctx.http``."""

    requestFactory = BoundedRequest
    noisy = False

    def __init__(self, max_body_size: int = MAX_BODY_SIZE) -> None:
        self.root = Root()
        super().__init__(self.root)
        self.max_body_size = max_body_size
        self.displayTracebacks = False

    def mount(
        self, prefix: str, child: resource.IResource, max_body_size: int | None = None
    ) -> None:
        """Serve ``child`` for ``prefix`` (``"/chat"``) and every path below it;
        ``max_body_size`` replaces the site's body cap for those paths."""
        self.root.mount(prefix, child, max_body_size)


def http_endpoints(reactor: Any, config: Any, tls: Any) -> list[tuple[str, Any]]:
    """``(label, endpoint)`` for each enabled ``[http]`` listener."""
    http = config.http
    found: list[tuple[str, Any]] = []
    if http.port:
        found.append(
            ("http", endpoints.TCP4ServerEndpoint(reactor, http.port, interface=http.interface))
        )
    if http.tls_port:
        endpoint = endpoints.SSL4ServerEndpoint(
            reactor, http.tls_port, tls, interface=http.interface
        )
        found.append(("https", endpoint))
    return found
