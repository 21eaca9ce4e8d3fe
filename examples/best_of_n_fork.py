"""Best-of-n from a shared prefix, with branchable sessions.

An agent has made a few tool calls in one session (the shared prefix: data loaded, a model fitted).
Instead of replaying that prefix n times, fork the session into n branches, each an exact copy of the
interpreter and its workspace at that moment, run one sampled continuation in each, score them, and
keep the best. Branches are independent: what one continuation changes, no other sees.

    python examples/best_of_n_fork.py    # against a local `sandpit up`
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from service.client import AsyncSandpitClient
from service.models import ExecutionResult

SANDPIT_URL = "http://127.0.0.1:8080"

PREFIX = [
    "import numpy as np\nrng = np.random.default_rng(0)\nx = rng.uniform(-1, 1, 2000)",
    "y = 3 * x**2 - x + rng.normal(0, 0.1, x.size)\nopen('train.csv', 'w').write('\\n'.join(map(str, y)))",
]
# n sampled continuations of the agent: each fits a polynomial of another degree and reports its error.
CANDIDATES = [
    f"coef = np.polyfit(x, y, {degree})\nprint(np.mean((np.polyval(coef, x) - y) ** 2))" for degree in (1, 2, 5)
]


def lowest_error(result: ExecutionResult) -> float:
    """Reward: the negative error a continuation printed; a failed one gets nothing."""
    if result.status != "ok":
        return float("-inf")
    return -float(result.stdout.split()[-1])


async def best_of_n(
    prefix: list[str], candidates: list[str], reward: Callable[[ExecutionResult], float]
) -> tuple[int, list[float]]:
    """The index of the best continuation and every continuation's reward."""
    async with AsyncSandpitClient(SANDPIT_URL) as sandpit:
        root = await sandpit.open_session()
        branches = []
        try:
            for turn in prefix:
                await sandpit.run_in_session(root.id, turn)
            branches = await sandpit.fork_session(root.id, count=len(candidates))
            results = await asyncio.gather(
                *(sandpit.run_in_session(branch.id, code) for branch, code in zip(branches, candidates, strict=True))
            )
        finally:
            for session in [root, *branches]:
                await sandpit.close_session(session.id)
    rewards = [reward(result) for result in results]
    return rewards.index(max(rewards)), rewards


if __name__ == "__main__":
    best, rewards = asyncio.run(best_of_n(PREFIX, CANDIDATES, lowest_error))
    print(f"rewards {rewards}; best continuation: {CANDIDATES[best]!r}")
