"""Configuration: strict validation with the full key path (xmppd/config.py), plugin
options through the registry, and the shipped example and reference kept in step
with the dataclasses (etc/xmppd.toml, docs/configuration.md)."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest

from xmppd.config import (
    SECTIONS,
    Config,
    ConfigError,
    load_config,
    parse_config,
)
from xmppd.registry import check

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "etc" / "xmppd.toml"
REFERENCE = ROOT / "docs" / "configuration.md"


def core_options() -> list[tuple[str, dataclasses.Field, Any]]:
    """Every core option: (section, field, default)."""
    found = []
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            found.append((section, f, default))
    return found


OPTIONS = core_options()
OPTION_IDS = [f"{s}.{f.name}" for s, f, _ in OPTIONS]


def error(raw: dict[str, Any], **kw: Any) -> str:
    with pytest.raises(ConfigError) as e:
        parse_config(raw, **kw)
    return str(e.value)


# -- defaults -------------------------------------------------------------------------


def test_no_file_means_all_defaults():
    """config.py load_config: None (the embedded setup) gives every dataclass default."""
    config = load_config(None)
    assert config == parse_config({})
    assert config.server == SECTIONS["server"]()
    assert (config.c2s.port, config.c2s.tls_port, config.c2s.allow_plaintext) == (5222, 5223, False)
    assert config.enabled_plugins == (
        *("disco", "ping", "time", "version"),
        *("offline", "carbons", "chatstates", "csi", "privacy", "last_activity"),
    )
    assert config.plugin_options == {}


def test_empty_sections_are_defaults():
    """config.py build_section: an empty table is the section's defaults."""
    config = parse_config({name: {} for name in SECTIONS})
    for name, cls in SECTIONS.items():
        assert getattr(config, name) == cls()


def test_values_are_kept_and_ints_become_floats():
    """config.py check_value: a TOML integer is a valid number and is stored as a float."""
    config = parse_config({"c2s": {"port": 15222, "negotiation_timeout": 30}})
    assert config.c2s.port == 15222
    assert config.c2s.negotiation_timeout == 30.0
    assert isinstance(config.c2s.negotiation_timeout, float)


def test_config_is_frozen():
    """config.py: sections are frozen dataclasses; nothing changes a validated config."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        parse_config({}).c2s.port = 1  # type: ignore[misc]


# -- unknown keys -------------------------------------------------------------------------


def _typo(name: str) -> str:
    """A near miss: the last two letters swapped, or a doubled letter for short names."""
    return name[:-2] + name[-1] + name[-2] if len(name) > 3 and name[-1] != name[-2] else name + "x"


@pytest.mark.parametrize(("section", "field", "default"), OPTIONS, ids=OPTION_IDS)
def test_unknown_key_in_every_section_suggests_the_close_one(section, field, default):
    """config.py build_section: an unknown key names its path and the option meant."""
    typo = _typo(field.name)
    message = error({section: {typo: default}})
    assert message.startswith(f"{section}.{typo}: unknown option")
    assert f"(did you mean {field.name!r}?)" in message


def test_unknown_key_without_a_close_one_has_no_suggestion():
    """config.py _suggest: nothing close, no guess."""
    assert error({"c2s": {"zzzzzz": 1}}) == "c2s.zzzzzz: unknown option"


@pytest.mark.parametrize(("section", "suggested"), [("sever", "server"), ("plugin", "plugins")])
def test_unknown_section_suggests_the_close_one(section, suggested):
    """config.py parse_config: an unknown top-level table names itself and the one meant."""
    assert error({section: {}}) == f"{section}: unknown section (did you mean {suggested!r}?)"


@pytest.mark.parametrize("section", [*SECTIONS, "plugins"])
def test_section_that_is_not_a_table(section):
    """config.py build_section: `c2s = 5` is not a section."""
    assert error({section: 5}) == f"{section}: expected a table, got 5"


# -- types and bounds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"c2s": {"port": "5222"}}, "c2s.port: expected an integer, got '5222'"),
        ({"c2s": {"port": True}}, "c2s.port: expected an integer, got True"),
        ({"c2s": {"port": 5222.0}}, "c2s.port: expected an integer, got 5222.0"),
        ({"c2s": {"allow_plaintext": 1}}, "c2s.allow_plaintext: expected a boolean, got 1"),
        ({"c2s": {"allow_plaintext": "yes"}}, "c2s.allow_plaintext: expected a boolean, got 'yes'"),
        (
            {"c2s": {"negotiation_timeout": "60"}},
            "c2s.negotiation_timeout: expected a number, got '60'",
        ),
        ({"c2s": {"auth_lockout": False}}, "c2s.auth_lockout: expected a number, got False"),
        ({"server": {"domain": 42}}, "server.domain: expected a string, got 42"),
        ({"storage": {"url": ["sqlite://"]}}, "storage.url: expected a string, got ['sqlite://']"),
        (
            {"cluster": {"backend": "redis"}},
            "cluster.backend: expected one of 'local', got 'redis'",
        ),
        (
            {"plugins": {"enabled": "ping"}},
            "plugins.enabled: expected a list of strings, got 'ping'",
        ),
        ({"plugins": {"enabled": ["ping", 7]}}, "plugins.enabled[1]: expected a string, got 7"),
        ({"plugins": {"ping": 1, "enabled": ["ping"]}}, "plugins.ping: expected a table, got 1"),
    ],
)
def test_wrong_type_names_the_key_and_the_type(raw, message):
    """config.py check_value: booleans are not integers, strings are not numbers."""
    assert error(raw) == message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"c2s": {"port": -1}}, "c2s.port: must be >= 0, got -1"),
        ({"c2s": {"port": 65536}}, "c2s.port: must be <= 65535, got 65536"),
        ({"c2s": {"negotiation_timeout": 0.5}}, "c2s.negotiation_timeout: must be >= 1.0, got 0.5"),
        ({"c2s": {"negotiation_timeout": 0}}, "c2s.negotiation_timeout: must be >= 1.0, got 0.0"),
        ({"c2s": {"auth_lockout": -0.1}}, "c2s.auth_lockout: must be >= 0.0, got -0.1"),
        ({"c2s": {"max_stanza_size": 9_999}}, "c2s.max_stanza_size: must be >= 10000, got 9999"),
        ({"c2s": {"max_depth": 1001}}, "c2s.max_depth: must be <= 1000, got 1001"),
        ({"storage": {"pool_size": 0}}, "storage.pool_size: must be >= 1, got 0"),
        ({"roster": {"max_items": 0}}, "roster.max_items: must be >= 1, got 0"),
    ],
)
def test_out_of_bounds_names_the_key_and_the_bound(raw, message):
    """config.py check_value: `min`/`max` metadata bound numbers, inclusive."""
    assert error(raw) == message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"c2s": {"port": 0}}, 0),
        ({"c2s": {"port": 65535}}, 65535),
        ({"c2s": {"auth_lockout": 0}}, 0.0),
        ({"c2s": {"negotiation_timeout": 1}}, 1.0),
    ],
)
def test_bounds_are_inclusive(raw, expected):
    """config.py check_value: the bound itself is allowed."""
    section, values = next(iter(raw.items()))
    key, _ = next(iter(values.items()))
    assert getattr(getattr(parse_config(raw), section), key) == expected


# -- cross-key rules ----------------------------------------------------------------------


@pytest.mark.parametrize("domain", ["", "user@host", "a/b", "exa mple", "x" * 1024])
def test_invalid_domain(domain):
    """config.py _check_semantics: server.domain must be a domain name."""
    assert error({"server": {"domain": domain}}).startswith("server.domain: not a valid domain")


def test_same_port_twice():
    """config.py _check_semantics: STARTTLS and direct TLS cannot share a port."""
    assert error({"c2s": {"port": 5222, "tls_port": 5222}}) == "c2s.tls_port: same as c2s.port"
    assert parse_config({"c2s": {"port": 0, "tls_port": 0}}).c2s.port == 0


def test_tls_cert_missing_file(tmp_path):
    """config.py _check_semantics: tls.cert must name an existing file (resolved from base_dir)."""
    key = tmp_path / "server.key"
    key.write_text("key")
    raw = {"tls": {"cert": "missing.pem", "key": "server.key"}}
    assert error(raw, base_dir=str(tmp_path)) == "tls.cert: no such file: missing.pem"


def test_tls_key_missing_file(tmp_path):
    """config.py _check_semantics: tls.key must name an existing file."""
    cert = tmp_path / "server.crt"
    cert.write_text("cert")
    raw = {"tls": {"cert": str(cert), "key": str(tmp_path / "nope.key")}}
    assert error(raw) == f"tls.key: no such file: {tmp_path / 'nope.key'}"


def test_tls_cert_without_key(tmp_path):
    """config.py _check_semantics: tls.cert and tls.key are set together."""
    cert = tmp_path / "server.crt"
    cert.write_text("cert")
    message = "tls.key: tls.cert and tls.key must be set together"
    assert error({"tls": {"cert": str(cert)}}) == message
    assert error({"tls": {"key": str(cert)}}) == message


def test_tls_cert_and_key_relative_to_base_dir(tmp_path):
    """config.py Config.resolve: relative paths resolve against the configuration's base."""
    (tmp_path / "tls").mkdir()
    for name in ("a.crt", "a.key"):
        (tmp_path / "tls" / name).write_text("x")
    raw = {"tls": {"cert": "tls/a.crt", "key": "tls/a.key"}}
    config = parse_config(raw, base_dir=str(tmp_path))
    assert config.resolve(config.tls.cert) == str(tmp_path / "tls" / "a.crt")


# -- files ---------------------------------------------------------------------------------


def test_missing_file():
    """config.py load_config: a missing file is one line naming it."""
    with pytest.raises(ConfigError, match=r"^--config: no such file: /nonexistent/xmppd\.toml$"):
        load_config("/nonexistent/xmppd.toml")


def test_unreadable_path_is_a_config_error(tmp_path):
    """config.py load_config: a directory (or an unreadable file) is a ConfigError, not a crash."""
    with pytest.raises(ConfigError, match=r"^--config: cannot read "):
        load_config(str(tmp_path))


@pytest.mark.parametrize("text", ["[c2s\nport = 1", "port = ", "[c2s]\nport = 1\nport = 2"])
def test_invalid_toml(tmp_path, text):
    """config.py load_config: TOML syntax errors (and duplicate keys) name the file."""
    path = tmp_path / "xmppd.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(str(path))
    assert str(e.value).startswith(f"{path}: not valid TOML: ")
    assert "\n" not in str(e.value)


def test_file_errors_name_the_key(tmp_path):
    """config.py load_config: a file's validation error names the key path."""
    path = tmp_path / "xmppd.toml"
    path.write_text("[c2s]\nmax_stanza_sise = 1\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(path))
    assert str(e.value) == ("c2s.max_stanza_sise: unknown option (did you mean 'max_stanza_size'?)")


def test_file_path_is_recorded(tmp_path):
    """config.py load_config: the Config remembers where it came from."""
    path = tmp_path / "xmppd.toml"
    path.write_text("[server]\ndomain = 'chat.example'\n")
    config = load_config(str(path))
    assert (config.path, config.server.domain) == (str(path), "chat.example")


# -- plugins -------------------------------------------------------------------------------


def test_options_for_a_plugin_not_enabled():
    """registry.py check: [plugins.NAME] only for an enabled plugin, with a guess."""
    config = parse_config({"plugins": {"enabled": ["ping"], "pong": {"interval": 10}}})
    with pytest.raises(ConfigError) as e:
        check(config)
    assert str(e.value) == (
        "plugins.pong: options for a plugin that is not enabled (did you mean 'ping'?)"
    )


def test_options_for_a_plugin_enabled_by_dotted_path():
    """registry.py check: [plugins.NAME] matches the plugin's name, however it was enabled."""
    config = parse_config({"plugins": {"enabled": ["plugins.ping:Ping"], "ping": {"interval": 10}}})
    assert [cls.name for cls in check(config)] == ["ping"]


def test_plugin_listed_twice():
    """config.py _check_semantics: plugins.enabled lists each plugin once."""
    raw = {"plugins": {"enabled": ["ping", "ping"]}}
    assert error(raw) == "plugins.enabled: a plugin is listed twice"


def test_unknown_plugin_is_rejected_by_the_registry():
    """registry.py check: a name that resolves to no plugin stops start-up."""
    config = parse_config({"plugins": {"enabled": ["no_such_plugin"]}})
    with pytest.raises(ConfigError, match=r"^plugins\.enabled: 'no_such_plugin': no such plugin$"):
        check(config)


def test_dotted_path_that_is_not_a_plugin():
    """registry.py resolve: `module:Class` must name an xmppd Plugin."""
    config = parse_config({"plugins": {"enabled": ["xmppd.config:Config"]}})
    with pytest.raises(ConfigError, match=r"is not an xmppd plugin$"):
        check(config)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"interval": "often"}, "plugins.ping.interval: expected a number, got 'often'"),
        ({"interval": 1.0}, "plugins.ping.interval: must be >= 5.0, got 1.0"),
        ({"ping_clients": 1}, "plugins.ping.ping_clients: expected a boolean, got 1"),
        (
            {"intervall": 10.0},
            "plugins.ping.intervall: unknown option (did you mean 'interval'?)",
        ),
    ],
)
def test_plugin_option_errors_name_the_plugin_key(options, message):
    """registry.py plugin_config: a plugin's options are validated like core ones."""
    config = parse_config({"plugins": {"enabled": ["ping"], "ping": options}})
    with pytest.raises(ConfigError) as e:
        check(config)
    assert str(e.value) == message


def test_option_for_a_plugin_without_options():
    """registry.py plugin_config: any key for a plugin that declares no Config is unknown."""
    from xmppd.registry import load_classes

    config = parse_config({"plugins": {"enabled": ["disco"]}})
    [disco] = load_classes(config)
    if disco.Config is not None:
        pytest.skip("the disco plugin has options now")
    config = parse_config({"plugins": {"enabled": ["disco"], "disco": {"x": 1}}})
    with pytest.raises(ConfigError, match=r"^plugins\.disco\.x: unknown option"):
        check(config)


# -- the shipped example and the reference -------------------------------------------------


def test_shipped_example_loads_validates_and_its_plugins_check():
    """etc/xmppd.toml: valid, every plugin in it resolves and its options validate."""
    config = load_config(str(EXAMPLE))
    assert config.enabled_plugins == Config().enabled_plugins
    classes = check(config)
    assert {cls.name for cls in classes} == set(config.enabled_plugins)


@pytest.mark.parametrize(("section", "field", "default"), OPTIONS, ids=OPTION_IDS)
def test_every_core_option_is_in_the_example_with_its_default(section, field, default):
    """etc/xmppd.toml says "the values shown are the defaults": every core key, default value."""
    raw = tomllib.loads(EXAMPLE.read_text())
    assert field.name in raw.get(section, {}), f"{section}.{field.name} missing from {EXAMPLE}"
    assert raw[section][field.name] == default


def _type_cell(hint: Any, meta: typing.Mapping[str, Any]) -> str:
    """The reference's Type column for an option."""
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        return "list of strings"
    name = {str: "string", int: "integer", float: "number", bool: "boolean"}[hint]
    if meta.get("path"):
        return f"{name} (file path)"
    if "min" in meta and "max" in meta:
        return f"{name}, {meta['min']} to {meta['max']}"
    if "min" in meta:
        return f"{name}, ≥ {meta['min']}"
    if "max" in meta:
        return f"{name}, ≤ {meta['max']}"
    return name


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _reference_rows() -> dict[str, list[str]]:
    """``section.key`` → the cells of its row in docs/configuration.md."""
    rows: dict[str, list[str]] = {}
    section = None
    for line in REFERENCE.read_text().splitlines():
        heading = re.fullmatch(r"## `\[([a-z0-9_]+)\]`", line)
        if heading:
            section = heading.group(1)
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        key = re.fullmatch(r"`([a-z0-9_]+)`", cells[0]) if line.startswith("| `") else None
        if section and key:
            rows[f"{section}.{key.group(1)}"] = cells
    return rows


@pytest.mark.parametrize(("section", "field", "default"), OPTIONS, ids=OPTION_IDS)
def test_every_core_option_is_in_the_reference(section, field, default):
    """docs/configuration.md: each core option's row has its type, bounds, default and doc."""
    hint = typing.get_type_hints(SECTIONS[section])[field.name]
    row = _reference_rows().get(f"{section}.{field.name}")
    assert row is not None, f"{section}.{field.name} missing from {REFERENCE}"
    key, type_cell, default_cell, meaning = row
    assert type_cell == _type_cell(hint, field.metadata)
    assert default_cell == f"`{_toml(default)}`"
    assert field.metadata["doc"] in meaning


def test_reference_documents_no_option_that_does_not_exist():
    """docs/configuration.md: no row for a removed or misspelt option."""
    known = {f"{s}.{f.name}" for s, f, _ in OPTIONS} | {"plugins.enabled"}
    assert set(_reference_rows()) == known


def test_reference_plugins_enabled_default():
    """docs/configuration.md: the plugins.enabled row shows the real default list."""
    _, type_cell, default_cell, _ = _reference_rows()["plugins.enabled"]
    assert type_cell == "list of strings"
    assert default_cell == f"`{_toml(Config().enabled_plugins)}`"
