"""GRPO-style reward functions backed by Sandpit: code judged against tests, math checked with sympy.

Each training step scores a group of completions per prompt. Every completion becomes one Sandpit call
(`/v1/judge` for code, the `math_verify` tool for math), all sent at once over one pooled async client,
so the step waits for the slowest call, not for the sum. Anything that goes wrong for one completion
(no code block, compile error, sandbox trouble) is a reward of 0 for it, never an exception that stops
the step.

With TRL: `GRPOTrainer(..., reward_funcs=[code_reward])`, with the dataset's `tests` column holding
`[{"stdin": ..., "expected_stdout": ...}, ...]` per prompt; or `math_reward` with an `answer` column.
Run this file to score a small demo group against a local server (`make up`).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from service.client import AsyncSandpitClient

SANDPIT_URL = os.environ.get("SANDPIT_URL", "http://127.0.0.1:8080")
CODE_BLOCK = re.compile(r"```(?:python|py)?\n(.*?)```", re.DOTALL)
T = TypeVar("T")


def completion_text(completion: str | list[dict[str, str]]) -> str:
    """TRL passes plain strings, or chat messages whose last one is the model's."""
    return completion if isinstance(completion, str) else completion[-1]["content"]


def extract_code(text: str) -> str | None:
    blocks = CODE_BLOCK.findall(text)
    return blocks[-1] if blocks else None


async def judged_reward(client: AsyncSandpitClient, text: str, tests: list[dict[str, str]]) -> float:
    code = extract_code(text)
    if code is None:
        return 0.0
    answer = await client.judge("python", code, tests, compare="whitespace", timeout_s=2)
    return answer.pass_ratio


async def math_verified_reward(client: AsyncSandpitClient, text: str, reference: str) -> float:
    answer = await client.call_tool("math_verify", {"answer": text, "reference": reference})
    if answer.is_error or answer.structured_content is None:
        return 0.0
    return float(answer.structured_content["reward"])


async def score_all(scores: list[Awaitable[float]]) -> list[float]:
    results = await asyncio.gather(*scores, return_exceptions=True)
    return [result if isinstance(result, float) else 0.0 for result in results]


async def code_rewards(client: AsyncSandpitClient, completions: list[Any], tests: list[Any]) -> list[float]:
    return await score_all(
        [judged_reward(client, completion_text(c), t) for c, t in zip(completions, tests, strict=True)]
    )


async def math_rewards(client: AsyncSandpitClient, completions: list[Any], answers: list[str]) -> list[float]:
    return await score_all(
        [math_verified_reward(client, completion_text(c), a) for c, a in zip(completions, answers, strict=True)]
    )


def with_client(score: Callable[[AsyncSandpitClient], Awaitable[T]]) -> T:
    async def run() -> T:
        async with AsyncSandpitClient(SANDPIT_URL) as client:
            return await score(client)

    return asyncio.run(run())


def code_reward(completions: list[Any], tests: list[Any], **_: Any) -> list[float]:
    """TRL reward function: the share of test cases each completion's last code block passes."""
    return with_client(lambda client: code_rewards(client, completions, tests))


def math_reward(completions: list[Any], answer: list[str], **_: Any) -> list[float]:
    """TRL reward function: 1.0 when the completion's final answer equals the reference, else 0.0."""
    return with_client(lambda client: math_rewards(client, completions, answer))


if __name__ == "__main__":
    tests = [{"stdin": f"{a} {b}\n", "expected_stdout": f"{a + b}\n"} for a, b in [(1, 2), (5, 5), (-3, 3)]]
    group = [
        "```python\na, b = map(int, input().split())\nprint(a + b)\n```",
        "```python\na, b = map(int, input().split())\nprint(a * b)\n```",
        "I would add the numbers.",
        "```python\nwhile True: pass\n```",
    ]
    print("code rewards:", code_reward(group, [tests] * len(group)))
    print("math rewards:", math_reward(["\\boxed{\\frac{1}{2}}", "\\boxed{2}"], ["0.5", "0.5"]))
