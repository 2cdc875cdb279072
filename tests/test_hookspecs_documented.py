"""Every hook has a docstring and a section in docs/plugins.md, and the guide's example is real."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from app import hookspecs
from app.plugin_types import SETTING_TYPES

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "plugins.md").read_text()
HOOKS = sorted(
    name
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(function, "modtools_image_spec")
)


def test_the_expected_hooks_exist() -> None:
    assert {
        "register_scanners",
        "register_actions",
        "item_received",
        "item_scanned",
        "item_decided",
        "action_completed",
    } <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_a_docstring(name: str) -> None:
    assert (inspect.getdoc(getattr(hookspecs, name)) or "").strip(), f"{name} has no docstring"


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_in_the_plugin_guide(name: str) -> None:
    arguments = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
    assert f"### `{name}({arguments})`" in GUIDE, f"docs/plugins.md does not document {name}"


@pytest.mark.parametrize("setting_type", SETTING_TYPES)
def test_every_setting_type_is_in_the_plugin_guide(setting_type: str) -> None:
    assert f"| `{setting_type}` |" in GUIDE


def test_the_guide_shows_the_tested_example_plugin_verbatim() -> None:
    match = re.search(r"<!-- example: (\S+) -->\n```python\n(.*?)```", GUIDE, re.S)
    assert match, "docs/plugins.md lost its example marker"
    assert match.group(2) == (ROOT / match.group(1)).read_text()
