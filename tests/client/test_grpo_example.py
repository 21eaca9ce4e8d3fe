"""The example GRPO reward functions (examples/grpo_reward.py) score a group against the real stack."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from service.stack import LocalStack

EXAMPLE = Path(__file__).parents[2] / "examples" / "grpo_reward.py"


@pytest.fixture(scope="module")
def example(stack: LocalStack) -> ModuleType:
    spec = importlib.util.spec_from_file_location("grpo_reward", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.SANDPIT_URL = stack.url
    return module


def test_code_reward_is_the_pass_ratio_and_zero_for_failures(example: ModuleType) -> None:
    tests = [{"stdin": f"{a} {b}\n", "expected_stdout": f"{a + b}\n"} for a, b in [(1, 2), (2, 2), (0, 0)]]
    group = [
        "```python\na, b = map(int, input().split())\nprint(a + b)\n```",
        "```python\na, b = map(int, input().split())\nprint(a * b)\n```",
        "no code here",
        "```python\nwhile True: pass\n```",
    ]
    rewards = example.code_reward(group, [tests] * 4)
    assert rewards == [1.0, pytest.approx(2 / 3), 0.0, 0.0]


def test_math_reward_accepts_chat_messages(example: ModuleType) -> None:
    completions = [[{"role": "assistant", "content": "so \\boxed{\\frac{3}{6}}"}], "\\boxed{0.25}"]
    assert example.math_reward(completions, answer=["0.5", "0.5"]) == [1.0, 0.0]
