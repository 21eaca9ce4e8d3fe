"""`GET /v1/languages`: the languages the workers run, with the versions and Python packages they found.

The gateway has no toolchains of its own (in containers it runs on a slim image): it answers what a
worker probed at start (service/worker/runtimes.py) and published to Redis. Before any worker has,
it still lists every language, with `reported: false` and nothing known about them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from service.gateway.calls import call_redis
from service.gateway.state import GatewayState, gateway_state
from service.languages import listing, registry
from service.models import Runtimes

router = APIRouter(tags=["languages"])
State = Annotated[GatewayState, Depends(gateway_state)]


@router.get(
    "/v1/languages",
    response_model=Runtimes,
    summary="The languages the workers run, their versions and Python's installed packages",
    responses={503: {"description": "Queue unavailable; retry later"}},
)
async def list_languages(state: State) -> Runtimes:
    report = await call_redis(state.queue.read_runtimes())
    return with_every_language(report or Runtimes(reported=False, languages=[]), state)


def with_every_language(report: Runtimes, state: GatewayState) -> Runtimes:
    """Every language of the registry, in its order: one a worker did not report is listed unprobed."""
    found = {runtime.name: runtime for runtime in report.languages}
    languages = [found.get(entry.name, entry) for entry in listing(registry(state.settings))]
    return report.model_copy(update={"languages": languages})
