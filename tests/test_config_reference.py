"""docs/configuration.md is the configuration reference: it must name every key of the
schema in `sciknow/config.py` with the default the schema has, and no key the schema
lacks, so the page cannot drift from the code as keys are added."""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

from sciknow.config import Config

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
# A reference row: | `section.key` | `default as TOML` | meaning |
ROW = re.compile(r"^\| `(?P<key>[a-z_][a-z0-9_.]*)` \| `(?P<default>.*?)` \|", re.M)


def schema_defaults(cls: type = Config, prefix: str = "") -> dict[str, Any]:
    """Every leaf key of the schema as `section.key`, with its default value."""
    hints = typing.get_type_hints(cls)
    keys: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        key = f"{prefix}{item.name}"
        typ = hints[item.name]
        if typing.get_origin(typ) is list and dataclasses.is_dataclass(typing.get_args(typ)[0]):
            typ = typing.get_args(typ)[0]  # [[sources]]: the keys of one entry
        if dataclasses.is_dataclass(typ):
            keys.update(schema_defaults(typ, f"{key}."))
        elif item.default is not dataclasses.MISSING:
            keys[key] = item.default
        else:
            keys[key] = item.default_factory()  # type: ignore[misc]
    return keys


def documented() -> dict[str, str]:
    """The reference's rows: key -> its default as written (TOML)."""
    return {m["key"]: m["default"] for m in ROW.finditer(REFERENCE.read_text(encoding="utf-8"))}


def toml_value(text: str) -> Any:
    return tomllib.loads(f"v = {text}")["v"]


def test_the_reference_names_every_key_with_its_default() -> None:
    rows = documented()
    schema = schema_defaults()
    missing = sorted(set(schema) - set(rows))
    wrong = [
        f"{key}: documented {rows[key]}, schema has {schema[key]!r}"
        for key in sorted(set(schema) & set(rows))
        if toml_value(rows[key]) != schema[key]
    ]
    assert not missing, f"docs/configuration.md lacks these keys: {', '.join(missing)}"
    assert not wrong, "docs/configuration.md has wrong defaults:\n" + "\n".join(wrong)


def test_the_reference_names_no_key_the_schema_lacks() -> None:
    stale = sorted(set(documented()) - set(schema_defaults()))
    assert not stale, f"docs/configuration.md names keys the schema lacks: {', '.join(stale)}"


def test_the_reference_is_found_by_the_row_pattern() -> None:
    """The checks above read table rows: a page that changed its format would pass
    them vacuously, so the rows must be there to read."""
    rows = documented()
    assert rows["data_dir"] == '".sciknow"'
    assert toml_value(rows["retrieval.kind_weights"]) == {
        "example": 0.5,
        "changelog": 0.5,
        "code": 0.25,
    }
