"""The shipped registry and tool packs load; a broken pack is refused whole, naming its file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from service.config import Settings
from service.gateway.tools import check_tool_limits
from service.tools.registry import ToolPackError, load_tools, tool_pack_dirs
from tests.tools.conftest import PACKS

ROOT = Path(__file__).parents[2]


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


def test_packs_setting_is_a_colon_separated_list() -> None:
    assert tool_pack_dirs("") == []
    assert tool_pack_dirs("/a/b::c") == [Path("/a/b"), Path("c")]


def test_example_packs_load_after_the_shipped_tools_with_their_files() -> None:
    tools = load_tools(packs=PACKS)
    assert list(tools) == ["python", "bash", "calculator", "math_verify", "shop_sql", "convert_units"]
    shop = tools["shop_sql"]
    assert shop.origin == PACKS[0] / "tools.json"
    request = shop.request({"query": "SELECT 1"})
    assert set(request.files) == {"shop.sql"}
    assert (request.timeout_s, request.memory_mb) == (5, 256)
    assert json.loads(request.stdin) == {"query": "SELECT 1"}
    assert tools["convert_units"].listing()["inputSchema"]["required"] == ["value", "from", "to"]
    check_tool_limits(tools, Settings())


def write_pack(directory: Path, entry: dict[str, Any] | None = None, text: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "run.py").write_text("print('{}')")
    tool = {"name": "ok_tool", "description": "d", "inputSchema": {"type": "object"}, "language": "python"}
    tool |= {"program": "run.py", **(entry or {})}
    (directory / "tools.json").write_text(text if text is not None else json.dumps({"tools": [tool]}))
    return directory


BROKEN = [
    ({}, "{not json", "not JSON"),
    ({}, '{"tool": []}', '"tools" list'),
    ({"inputSchema": {"type": 5}}, None, "inputSchema is not a JSON Schema"),
    ({"name": "Bad Name"}, None, "name"),
    ({"language": "cobol"}, None, "language"),
    ({"program": "missing.py"}, None, "cannot read 'missing.py'"),
    ({"program": "../escape.py"}, None, "program"),
    ({"files": ["/etc/passwd"]}, None, "files"),
    ({"files": ["link"]}, None, "leads out of"),
    ({"name": "calculator"}, None, "'calculator' is already defined by"),
    ({"name": "batch"}, None, "reserved"),
    ({"surprise": 1}, None, "surprise"),
]


@pytest.mark.parametrize(("entry", "text", "problem"), BROKEN)
def test_a_broken_pack_is_refused_naming_its_file(
    tmp_path: Path, entry: dict[str, Any], text: str | None, problem: str
) -> None:
    pack = write_pack(tmp_path / "pack", entry, text)
    (pack / "link").symlink_to("/etc/hostname")
    good = write_pack(tmp_path / "good")
    with pytest.raises(ToolPackError) as refused:
        load_tools(packs=[good, pack])
    assert str(refused.value).startswith(f"{pack / 'tools.json'}: ")
    assert problem in str(refused.value)


def test_a_missing_pack_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ToolPackError, match=f"^{tmp_path / 'nowhere' / 'tools.json'}: cannot read it"):
        load_tools(packs=[tmp_path / "nowhere"])


def test_a_tool_over_the_deployments_limits_is_refused_at_start(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack", {"timeout_s": 600})
    with pytest.raises(ToolPackError, match="timeout_s must be at most 60"):
        check_tool_limits(load_tools(packs=[pack]), Settings())


def test_the_gateway_does_not_start_with_a_broken_pack(tmp_path: Path) -> None:
    good = write_pack(tmp_path / "good")
    bad = write_pack(tmp_path / "bad", {"name": "other", "program": "nope.py"})
    env = {**os.environ, "SANDPIT_TOOL_PACKS": f"{good}:{bad}", "SANDPIT_PORT": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "gateway"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert f"{bad / 'tools.json'}: tools[0] ('other'): cannot read 'nope.py'" in done.stderr
