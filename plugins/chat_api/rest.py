"""The REST conventions both SDKs rely on (SDK-CONTRACT §2): parameters from the
query string and from a JSON or form-encoded body (DELETE included), bracket keys
(``user[login]``, ``updated_at[gt]``, literal or percent-encoded) nested into
dicts, a JSON body on every answer, errors as ``{"errors": ...}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

log = Logger()

_BRACKETS = re.compile(r"\[([^\[\]]*)\]")
# Bodies that are not parameters (blob uploads, SDK-CONTRACT §5.3): left unread.
_OPAQUE = ("multipart/", "application/octet-stream", "image/", "audio/", "video/")


class ApiError(Exception):
    """Answer ``{"errors": errors}`` with HTTP ``code``."""

    def __init__(self, code: int, errors: Any) -> None:
        super().__init__(code, errors)
        self.code = code
        self.errors = errors


def no_session() -> ApiError:
    """SDK-CONTRACT §2: the exact text both SDKs react to (``sessionExpired``)."""
    return ApiError(401, {"base": ["Required session does not exist"]})


def truthy(value: Any) -> bool:
    """A flag parameter (``force``, ``send_to_chat``...): ``1`` or ``true``."""
    return str(value).strip().lower() in ("1", "true")


def nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``[("user[login]", "a"), ("ids[]", "1")]`` -> ``{"user": {"login": "a"}, "ids": ["1"]}``."""
    params: dict[str, Any] = {}
    for key, value in pairs:
        head = key.split("[", 1)[0]
        subs = _BRACKETS.findall(key[len(head) :]) if "[" in key else []
        if not head:
            continue
        target = params
        path = [head, *subs]
        for i, name in enumerate(path[:-1]):
            if path[i + 1] == "":  # k[]=v: a list
                break
            nxt = target.get(name)
            if not isinstance(nxt, dict):
                nxt = target[name] = {}
            target = nxt
        else:
            target[path[-1]] = value
            continue
        items = target.setdefault(name, [])
        if isinstance(items, list):
            items.append(value)
    return params


def flatten(params: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """The inverse of :func:`nest`, for signatures: ``user[login]=v`` pairs."""
    pairs = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            pairs += flatten(value, name)
        elif isinstance(value, list):
            pairs.append((f"{name}[]", ",".join(str(v) for v in value)))
        elif isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        else:
            pairs.append((name, "" if value is None else str(value)))
    return pairs


def parse_params(request: server.Request) -> dict[str, Any]:
    """Query string, then the body (JSON object or form-encoded), merged."""
    query = request.uri.split(b"?", 1)[1] if b"?" in request.uri else b""
    params = nest(parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True))
    ctype = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
    if ctype.startswith(_OPAQUE):  # a blob upload: its handler reads the body
        return params
    request.content.seek(0)
    body = request.content.read()
    if not body.strip():
        return params
    if ctype == "application/json" or (not ctype and body.lstrip()[:1] == b"{"):
        try:
            data = json.loads(body)
        except ValueError:
            raise ApiError(400, ["Body is not valid JSON"]) from None
        if not isinstance(data, dict):
            raise ApiError(400, ["Body must be a JSON object"])
        params.update(data)
    else:
        text = body.decode("utf-8", "replace")
        params.update(nest(parse_qsl(text, keep_blank_values=True)))
    return params


@dataclass
class Call:
    """One API request: its parameters, path match and token."""

    request: server.Request
    params: dict[str, Any]
    match: re.Match[str]
    token: str | None
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers

    def header(self, name: str) -> str | None:
        value = self.request.getHeader(name)
        return value.strip() if value else None


@dataclass
class Raw:
    """A non-JSON answer: the bytes of a blob (SDK-CONTRACT §5.3 download URLs)."""

    body: bytes
    content_type: str


Handler = Callable[[Call], Awaitable[Any]]


class Api(resource.Resource):
    """A leaf resource dispatching ``(method, path regex)`` to async handlers.

    A handler returns the JSON body (status 200) or ``(status, body)``; it raises
    :class:`ApiError` for an error answer."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(pattern), handler))

    def render(self, request: server.Request) -> Any:
        defer.ensureDeferred(self._serve(request))
        return server.NOT_DONE_YET

    async def _serve(self, request: server.Request) -> None:
        path = "/".join(s.decode() for s in request.prepath + request.postpath)
        method = request.method.decode("ascii", "replace").upper()
        status, body, headers = 200, None, {}
        try:
            found = [(m, p.fullmatch(path), h) for m, p, h in self.routes]
            found = [(m, match, h) for m, match, h in found if match]
            if not found:
                raise ApiError(404, ["Not found"])
            handler = next((h for m, _, h in found if m == method), None)
            if handler is None:
                raise ApiError(405, ["Method not allowed"])
            match = next(match for m, match, _ in found if m == method)
            token = request.getHeader("CB-Token") or request.getHeader("QB-Token")
            call = Call(request, parse_params(request), match, token and token.strip())
            result = await handler(call)
            headers = call.headers
            status, body = result if isinstance(result, tuple) else (200, result)
        except ApiError as e:
            status, body = e.code, {"errors": e.errors}
        except Exception:
            log.failure("chat_api: {method} {path} failed", method=method, path=path)
            status, body = 500, {"errors": ["Internal server error"]}
        if request.finished or request._disconnected:
            return
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        for name, value in headers.items():
            request.setHeader(name, value)
        if isinstance(body, Raw):
            request.setHeader(b"content-type", body.content_type.encode("ascii"))
            request.write(body.body)
        else:
            request.write(json.dumps({} if body is None else body).encode())
        request.finish()
