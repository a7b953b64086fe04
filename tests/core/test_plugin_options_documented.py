"""Every shipped plugin's options are in the example configuration (etc/xmppd.toml,
in its ``[plugins.NAME]`` block, commented or not) and in docs/configuration.md
(a ``plugins.NAME.KEY`` row), so an operator finds every knob in both places."""

from __future__ import annotations

import dataclasses
import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "etc" / "xmppd.toml").read_text()
REFERENCE = (ROOT / "docs" / "configuration.md").read_text()


def _options() -> list[tuple[str, str]]:
    found = []
    for ep in entry_points(group="xmppd.plugins"):
        config = getattr(ep.load(), "Config", None)
        if config is not None and dataclasses.is_dataclass(config):
            found += [(ep.name, f.name) for f in dataclasses.fields(config)]
    return sorted(found)


def _example_block(plugin: str) -> str:
    """The lines from ``[plugins.NAME]`` (maybe commented) to the next table header."""
    match = re.search(rf"^#? ?\[plugins\.{plugin}\]\n(.*?)(?=^#? ?\[|\Z)", EXAMPLE, re.M | re.S)
    return match.group(1) if match else ""


def test_shipped_plugins_have_options():
    assert len(_options()) >= 10


@pytest.mark.parametrize(("plugin", "key"), _options())
def test_plugin_option_in_example_and_reference(plugin, key):
    block = _example_block(plugin)
    assert re.search(rf"^#? ?{key} =", block, re.M), f"plugins.{plugin}.{key} not in etc/xmppd.toml"
    assert f"| `plugins.{plugin}.{key}` |" in REFERENCE, (
        f"plugins.{plugin}.{key} has no row in docs/configuration.md"
    )
