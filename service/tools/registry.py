"""Load the tool registry, validate a call's arguments, and turn a tool call into an `ExecuteRequest`.

The registry is the shipped `tools.json` plus any tool packs an operator names (`SANDPIT_TOOL_PACKS`,
directories separated by `:`). A pack is a directory with the same kind of `tools.json`; its programs and
extra files are paths inside that directory. Everything is read once at gateway start-up, and any fault
(bad JSON, a schema that is not a schema, a missing or escaping file, a name two packs define) raises
`ToolPackError` naming the file then: the gateway never starts with part of the tools.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError

from service.models import ExecuteRequest, ToolSpec

DEFAULT_REGISTRY = Path(__file__).with_name("tools.json")
PACK_FILE = "tools.json"
# `POST /v1/tools/batch` is the batch route, so no tool may take that name.
RESERVED_NAMES = frozenset({"batch"})


class ToolPackError(ValueError):
    """A registry or tool pack that cannot be loaded; the message starts with the file at fault."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


@dataclass(frozen=True)
class Tool:
    spec: ToolSpec
    source: str
    validator: Draft202012Validator
    origin: Path
    # The pack's extra files, base64, as ExecuteRequest.files carries them.
    files: dict[str, str] = field(default_factory=dict)

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
            language=self.spec.language,
            code=self.source,
            stdin=json.dumps(arguments),
            timeout_s=self.spec.timeout_s,
            memory_mb=self.spec.memory_mb,
            files=self.files,
        )


def tool_pack_dirs(setting: str) -> list[Path]:
    """`SANDPIT_TOOL_PACKS`: directories separated by `:`, empty parts ignored."""
    return [Path(part) for part in setting.split(":") if part.strip()]


def load_tools(path: Path | None = None, packs: Sequence[Path] = ()) -> dict[str, Tool]:
    """The shipped registry (or `path`), then each pack directory's `tools.json`, in order."""
    tools: dict[str, Tool] = {}
    for registry in [path or DEFAULT_REGISTRY, *(Path(pack) / PACK_FILE for pack in packs)]:
        for tool in load_registry(registry):
            if tool.spec.name in tools:
                raise ToolPackError(
                    registry, f"tool {tool.spec.name!r} is already defined by {tools[tool.spec.name].origin}"
                )
            tools[tool.spec.name] = tool
    return tools


def load_registry(registry: Path) -> list[Tool]:
    try:
        document = json.loads(registry.read_text())
    except OSError as exc:
        raise ToolPackError(registry, f"cannot read it ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ToolPackError(registry, f"not JSON: {exc}") from None
    entries = document.get("tools") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ToolPackError(registry, 'must be a JSON object with a "tools" list')
    return [load_tool(registry, index, entry) for index, entry in enumerate(entries)]


def load_tool(registry: Path, index: int, entry: Any) -> Tool:
    where = f"tools[{index}]" + (f" ({entry['name']!r})" if isinstance(entry, dict) and "name" in entry else "")
    try:
        spec = ToolSpec.model_validate(entry)
        Draft202012Validator.check_schema(spec.input_schema)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, error['loc'])) or 'entry'}: {error['msg']}" for error in exc.errors())
        raise ToolPackError(registry, f"{where}: {problems}") from None
    except SchemaError as exc:
        raise ToolPackError(registry, f"{where}: inputSchema is not a JSON Schema: {exc.message}") from None
    if spec.name in RESERVED_NAMES:
        raise ToolPackError(registry, f"{where}: the name {spec.name!r} is reserved")
    try:
        source = read_pack_file(registry, where, spec.program).decode()
    except UnicodeDecodeError:
        raise ToolPackError(registry, f"{where}: program {spec.program!r} is not UTF-8 text") from None
    files = {path: base64.b64encode(read_pack_file(registry, where, path)).decode() for path in spec.files}
    return Tool(spec, source, Draft202012Validator(spec.input_schema), registry, files)


def read_pack_file(registry: Path, where: str, relative: str) -> bytes:
    directory = registry.parent.resolve()
    path = (directory / relative).resolve()
    if not path.is_relative_to(directory):
        raise ToolPackError(registry, f"{where}: {relative!r} leads out of {directory}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ToolPackError(registry, f"{where}: cannot read {relative!r} ({exc.strerror})") from None
