"""docs/openapi.yaml (issue 3): a valid OpenAPI 3.1 description, in step with the
chat_api plugin's route table both ways, every described call reachable through
the plugin's HTTP mounts."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest_twisted
import yaml
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import OpenAPIV31SpecValidator

from tests.plugins.chat_api_support import app_session, cc, sign_up, start, user_session

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def load_spec() -> dict[str, Any]:
    with open(SPEC, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """A ``$ref`` to this document (``#/components/...``), followed."""
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def operations(spec: dict[str, Any]) -> list[tuple[str, str, str, list[str]]]:
    """``(METHOD, path template, sample path, problems)`` for each operation; the
    sample fills each ``{name}`` with its path parameter's ``example`` (the
    operation's own parameter overrides the path item's, as in OpenAPI)."""
    found = []
    for template, item in spec["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            params = {}
            for raw in item.get("parameters", []) + item[method].get("parameters", []):
                param = _resolve(spec, raw)
                if param["in"] == "path":
                    params[param["name"]] = param
            problems, sample = [], template
            for name in re.findall(r"\{([^}]+)\}", template):
                param = params.get(name)
                if param is None or "example" not in param:
                    problems.append(f"{method.upper()} {template}: {{{name}}} has no example")
                    continue
                value = str(param["example"])
                pattern = _resolve(spec, param.get("schema", {})).get("pattern")
                if pattern and not re.search(pattern, value):
                    problems.append(f"{method.upper()} {template}: {value!r} fails {pattern}")
                sample = sample.replace(f"{{{name}}}", value)
            found.append((method.upper(), template, sample, problems))
    return found


def dispatched(routes: list[tuple[str, re.Pattern[str], Any]], method: str, sample: str) -> int:
    """The index of the route the plugin's dispatcher (``rest.Api._serve``) picks for
    ``method`` and ``sample``: the first of that method whose pattern matches the
    whole path (without its leading ``/``); -1 for none."""
    path = sample.lstrip("/")
    for i, (m, pattern, _) in enumerate(routes):
        if m == method and pattern.fullmatch(path):
            return i
    return -1


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_spec_is_valid_openapi_3_1():
    """The validator accepts docs/openapi.yaml as OpenAPI 3.1 and every ``$ref``
    resolves (components the validator does not visit included); a copy whose
    path parameter is no longer declared is rejected (so the validator checks)."""
    spec = load_spec()
    assert spec["openapi"].startswith("3.1.")
    errors = [e.message for e in OpenAPIV31SpecValidator(spec).iter_errors()]
    assert errors == []
    for ref in _refs(spec):
        assert ref.startswith("#/components/") and _resolve(spec, {"$ref": ref}), ref
    broken = copy.deepcopy(spec)
    del broken["paths"]["/users/{user_id}.json"]["parameters"]
    errors = [e.message for e in OpenAPIV31SpecValidator(broken).iter_errors()]
    assert any("'user_id'" in e for e in errors), errors


def test_spec_describes_the_conventions():
    """Servers, the three auth headers, the exact 401 text the SDKs react to, and
    every operation's error answers are ``{"errors": ...}``."""
    spec = load_spec()
    assert [s["url"] for s in spec["servers"]] == [
        "http://localhost:5280",
        "https://localhost:5281",
    ]
    schemes = spec["components"]["securitySchemes"]
    assert {(s["in"], s["name"]) for s in schemes.values()} >= {
        ("header", "CB-Token"),
        ("header", "QB-Token"),
        ("header", "CB-AuthKey"),
    }
    no_session = spec["components"]["responses"]["NoSession"]["content"]["application/json"]
    assert no_session["example"] == {"errors": {"base": ["Required session does not exist"]}}
    error = {"$ref": "#/components/schemas/Error"}
    for method, template, _, _ in operations(spec):
        responses = spec["paths"][template][method.lower()]["responses"]
        for code, raw in responses.items():
            if code.startswith(("4", "5")):
                schema = _resolve(spec, raw)["content"]["application/json"]["schema"]
                assert schema == error, f"{method} {template} {code}"


def drift(spec: dict[str, Any], routes: list[tuple[str, re.Pattern[str], Any]]) -> list[str]:
    """What differs between the spec and a route table, one line each: spec entries
    no route serves, routes no entry reaches, bad examples."""
    problems, reached = [], set()
    for method, template, sample, bad_examples in operations(spec):
        problems += bad_examples
        index = dispatched(routes, method, sample)
        if index >= 0:
            reached.add(index)
        else:
            problems.append(f"{method} {template}: in docs/openapi.yaml, but no route serves it")
    for i, (method, pattern, _) in enumerate(routes):
        if i not in reached:
            problems.append(f"{method} {pattern.pattern}: a route with no docs/openapi.yaml entry")
    return problems


@pytest_twisted.ensureDeferred
async def test_spec_and_route_table_agree(tmp_path):
    """Drift, both ways: every route of the running plugin is reached by a spec
    entry, and every spec entry reaches a route of its method. A route added
    without an entry, or an entry whose route goes, is reported by name."""
    spec = load_spec()
    web = await start(tmp_path)
    try:
        routes = list(web.h.server.plugins.plugins["chat_api"].api.routes)
    finally:
        await web.stop()
    assert len(routes) >= 30
    problems = drift(spec, routes)
    assert not problems, "\n".join(problems)

    extra = [*routes, ("GET", re.compile(r"chat/extra\.json"), None)]
    assert drift(spec, extra) == ["GET chat/extra\\.json: a route with no docs/openapi.yaml entry"]
    without_blob = [r for r in routes if r[1].pattern != r"blobs/(?P<id>\d+)/complete\.json"]
    assert drift(spec, without_blob) == [
        "PUT /blobs/{blob_id}/complete.json: in docs/openapi.yaml, but no route serves it"
    ]


@pytest_twisted.ensureDeferred
async def test_every_routed_entry_is_reachable_over_http(tmp_path):
    """Each spec entry with a route, sent without a token to the real HTTP site,
    gets its handler's answer (401, or 404 naming the blob), never the site's or
    the dispatcher's ``404 Not found`` / ``405``: the plugin mounts its prefixes."""
    ops = operations(load_spec())
    web = await start(tmp_path)
    try:
        routes = web.h.server.plugins.plugins["chat_api"].api.routes
        checked = 0
        for method, template, sample, _ in ops:
            assert dispatched(routes, method, sample) >= 0, (method, template)
            r = await web.request(method, sample)
            body = json.loads(r.body) if r.body.startswith(b"{") else None
            assert r.code != 405 and body != {"errors": ["Not found"]}, (method, template)
            assert r.code in (401, 404), (method, template, r.code, r.body)
            checked += 1
        assert checked == len(ops)
    finally:
        await web.stop()


def schema_errors(spec: dict[str, Any], method: str, template: str, code: int, body: Any) -> list:
    """What the spec's JSON schema for this answer finds wrong with ``body``."""
    responses = spec["paths"][template][method.lower()]["responses"]
    assert str(code) in responses, (method, template, code, body)
    media = _resolve(spec, responses[str(code)])["content"]["application/json"]
    schema = {"components": spec["components"], **media["schema"]}
    return [e.message for e in OAS31Validator(schema).iter_errors(body)]


def check_answer(spec: dict[str, Any], method: str, template: str, r: Any) -> None:
    """``r`` (a real answer) has a status the spec lists for the operation and a
    body its JSON schema accepts."""
    errors = schema_errors(spec, method, template, r.code, json.loads(r.body))
    assert errors == [], (method, template, r.code, errors)


@pytest_twisted.ensureDeferred
async def test_real_answers_match_the_response_schemas(tmp_path):
    """Session, User, Dialog, Message, Blob, the lists and the error answers, as the
    running plugin sends them, validate against the spec's schemas."""
    spec = load_spec()
    web = await start(tmp_path)
    try:
        r = await web.request("GET", "/session.json")
        check_answer(spec, "GET", "/session.json", r)
        assert r.code == 401
        token = await app_session(web)
        bob = await sign_up(web, token, "bob", full_name="Bob", tag_list="a,b")
        r = await web.request(
            "POST",
            "/users.json",
            json_body={"user": {"login": "alice", "password": "password1", "email": "a@x.test"}},
            headers=cc(token),
        )
        check_answer(spec, "POST", "/users.json", r)
        alice = await user_session(web, "alice")
        r = await web.request("GET", "/session.json", headers=cc(alice))
        check_answer(spec, "GET", "/session.json", r)
        assert r.json["session"]["user"]["login"] == "alice"
        r = await web.request("GET", "/users/v2.json?id[in]=1,2,3", headers=cc(alice))
        check_answer(spec, "GET", "/users/v2.json", r)
        r = await web.request(
            "PUT", f"/users/{bob['id']}.json", json_body={"user": {}}, headers=cc(alice)
        )
        check_answer(spec, "PUT", "/users/{user_id}.json", r)
        assert r.code == 403

        body = {"type": 2, "name": "team", "occupants_ids": str(bob["id"])}
        r = await web.request("POST", "/chat/Dialog.json", json_body=body, headers=cc(alice))
        check_answer(spec, "POST", "/chat/Dialog.json", r)
        dialog = r.json["_id"]
        wrong = {**r.json, "occupants_ids": "2, 3"}  # the schema does check
        assert schema_errors(spec, "POST", "/chat/Dialog.json", 201, wrong)
        r = await web.request("POST", "/chat/Dialog.json", json_body={"type": 2}, headers=cc(alice))
        check_answer(spec, "POST", "/chat/Dialog.json", r)
        assert r.code == 422
        r = await web.request("GET", "/chat/Dialog.json?updated_at[gt]=0", headers=cc(alice))
        check_answer(spec, "GET", "/chat/Dialog.json", r)
        assert r.json["items"][0]["_id"] == dialog

        body = {"chat_dialog_id": dialog, "message": "hi", "mood": "good"}
        r = await web.request("POST", "/chat/Message.json", json_body=body, headers=cc(alice))
        check_answer(spec, "POST", "/chat/Message.json", r)
        r = await web.request(
            "GET", f"/chat/Message.json?chat_dialog_id={dialog}", headers=cc(alice)
        )
        check_answer(spec, "GET", "/chat/Message.json", r)
        assert r.json["items"][0]["mood"] == "good"
        r = await web.request("GET", "/chat/Message/unread.json", headers=cc(alice))
        check_answer(spec, "GET", "/chat/Message/unread.json", r)
        r = await web.request("GET", "/chat/Message.json", headers=cc(token))
        check_answer(spec, "GET", "/chat/Message.json", r)
        assert r.code == 403  # an application session

        body = {"blob": {"content_type": "image/png", "name": "a.png", "public": True}}
        r = await web.request("POST", "/blobs.json", json_body=body, headers=cc(alice))
        check_answer(spec, "POST", "/blobs.json", r)
        r = await web.request("GET", f"/blobs/{r.json['blob']['id']}.json", headers=cc(alice))
        check_answer(spec, "GET", "/blobs/{blob_id}.json", r)
        r = await web.request("GET", "/blobs.json", headers=cc(alice))
        check_answer(spec, "GET", "/blobs.json", r)
        r = await web.request("GET", "/blobs/999.json", headers=cc(alice))
        check_answer(spec, "GET", "/blobs/{blob_id}.json", r)
        assert r.code == 404
    finally:
        await web.stop()
