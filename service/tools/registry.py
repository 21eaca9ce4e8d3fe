"""Load the tool registry, validate a call's arguments, and turn a tool call into an `ExecuteRequest`.

The registry is read once at gateway start-up; a broken registry (bad schema, missing program) stops
the gateway then, not on the first call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from service.models import ExecuteRequest, ToolSpec

DEFAULT_REGISTRY = Path(__file__).with_name("tools.json")


@dataclass(frozen=True)
class Tool:
    spec: ToolSpec
    source: str
    validator: Draft202012Validator

    def listing(self) -> dict[str, Any]:
        """The tool as MCP's `tools/list` shows it."""
        return {"name": self.spec.name, "description": self.spec.description, "inputSchema": self.spec.input_schema}

    def argument_errors(self, arguments: Any) -> list[dict[str, Any]]:
        errors = sorted(self.validator.iter_errors(arguments), key=lambda error: list(error.absolute_path))
        return [
            {
                "loc": ["body", *error.absolute_path],
                "msg": error.message,
                "type": f"schema.{error.validator}",
                "schema_path": list(error.absolute_schema_path),
            }
            for error in errors
        ]

    def request(self, arguments: Any) -> ExecuteRequest:
        return ExecuteRequest(
            language=self.spec.language, code=self.source, stdin=json.dumps(arguments), timeout_s=self.spec.timeout_s
        )


def load_tools(path: Path | None = None) -> dict[str, Tool]:
    registry = path or DEFAULT_REGISTRY
    entries = json.loads(registry.read_text())["tools"]
    tools: dict[str, Tool] = {}
    for entry in entries:
        spec = ToolSpec.model_validate(entry)
        Draft202012Validator.check_schema(spec.input_schema)
        source = (registry.parent / spec.program).read_text()
        tools[spec.name] = Tool(spec, source, Draft202012Validator(spec.input_schema))
    return tools
