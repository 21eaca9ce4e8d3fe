"""The shipped registry loads, and arguments are checked against each tool's schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema.exceptions import SchemaError

from service.tools.registry import load_tools


def test_shipped_registry_has_the_four_tools() -> None:
    tools = load_tools()
    assert list(tools) == ["python", "bash", "calculator", "math_verify"]
    assert all(tool.source for tool in tools.values())


def test_argument_errors_name_the_field_and_the_rule() -> None:
    calculator = load_tools()["calculator"]
    assert calculator.argument_errors({"expression": "1+1"}) == []
    errors = calculator.argument_errors({"expression": 3})
    assert errors[0]["loc"] == ["body", "expression"]
    assert errors[0]["type"] == "schema.type"
    assert calculator.argument_errors([]) != []


def test_a_registry_with_a_broken_schema_does_not_load(tmp_path: Path) -> None:
    (tmp_path / "p.py").write_text("print('{}')")
    entry = {"name": "bad", "description": "", "inputSchema": {"type": 5}, "language": "python", "program": "p.py"}
    (tmp_path / "tools.json").write_text(json.dumps({"tools": [entry]}))
    with pytest.raises(SchemaError):
        load_tools(tmp_path / "tools.json")
