"""`GET /v1/languages`: what the workers probed (versions, Python's packages), and the answer before they have."""

from __future__ import annotations

import time

import httpx

from service.config import Settings
from service.languages import listing, registry
from service.models import Language, LanguageRuntime, Runtimes
from service.queue.redis_queue import RedisQueue
from tests.calls import HOST_HAS_CGROUP_V1

# Import name -> the distribution names it may be listed under.
SCIENTIFIC_STACK = {
    "numpy": {"numpy"},
    "scipy": {"scipy"},
    "sympy": {"sympy"},
    "mpmath": {"mpmath"},
    "pandas": {"pandas"},
    "networkx": {"networkx"},
    "sklearn": {"scikit-learn"},
    "matplotlib": {"matplotlib"},
    "PIL": {"Pillow", "pillow"},
    "regex": {"regex"},
    "sortedcontainers": {"sortedcontainers"},
    "more_itertools": {"more-itertools"},
    "dateutil": {"python-dateutil"},
    "pytz": {"pytz"},
}
REPORT_WAIT_S = 30.0


def reported_languages(api: httpx.Client) -> dict[str, dict[str, object]]:
    """The languages once a worker has reported; workers probe right after they start taking calls."""
    deadline = time.monotonic() + REPORT_WAIT_S
    while True:
        response = api.get("/v1/languages")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["reported"]:
            return {language["name"]: language for language in body["languages"]}
        assert time.monotonic() < deadline, "no worker reported its runtimes"
        time.sleep(0.2)


def test_python_is_listed_with_its_version_and_the_scientific_stack(api: httpx.Client) -> None:
    python = reported_languages(api)["python"]
    version = python["version"]
    assert isinstance(version, str) and version.startswith("Python 3."), version
    packages = python["packages"]
    assert isinstance(packages, dict)
    for module, names in SCIENTIFIC_STACK.items():
        listed = names & set(packages)
        assert listed, f"{module} missing from {sorted(packages)}"
        # Debian ships mpmath with 0.0.0 in its metadata: the probe must find the real version.
        assert all(packages[name] not in ("", "0.0.0") for name in listed), (module, listed)


def test_bash_and_cpp_are_listed_with_their_toolchain_versions(api: httpx.Client) -> None:
    languages = reported_languages(api)
    assert list(languages) == [language.value for language in Language]
    assert str(languages["bash"]["version"]).startswith("GNU bash, version ")
    assert str(languages["cpp"]["version"]).startswith("g++ ")
    assert languages["bash"]["packages"] == {} and languages["cpp"]["packages"] == {}


async def test_before_any_worker_reports_every_language_is_listed_without_a_version(
    gateway_without_workers: tuple[httpx.AsyncClient, RedisQueue],
) -> None:
    client, _ = gateway_without_workers
    response = await client.get("/v1/languages")
    assert response.status_code == 200
    assert response.json() == {
        "reported": False,
        "worker": None,
        "probed_at": None,
        "sandbox_limits": None,
        "languages": [language.model_dump(mode="json") for language in listing(registry(Settings()))],
    }
    listed = response.json()["languages"]
    assert [language["name"] for language in listed] == [language.value for language in Language]
    assert all(language["available"] is None and language["version"] is None for language in listed)


async def test_a_language_the_report_lacks_is_still_listed(
    gateway_without_workers: tuple[httpx.AsyncClient, RedisQueue],
) -> None:
    client, queue = gateway_without_workers
    bash = LanguageRuntime(name=Language.bash, version="GNU bash, version 5.2.15(1)-release")
    await queue.publish_runtimes(Runtimes(reported=True, worker="w1", probed_at=1.0, languages=[bash]), ttl_s=60)
    body = (await client.get("/v1/languages")).json()
    assert body["reported"] is True and body["worker"] == "w1"
    assert [language["name"] for language in body["languages"]] == [language.value for language in Language]
    versions = {language["name"]: language["version"] for language in body["languages"]}
    assert versions == {language.value: None for language in Language} | {"bash": "GNU bash, version 5.2.15(1)-release"}


async def test_an_unreadable_report_counts_as_none(
    gateway_without_workers: tuple[httpx.AsyncClient, RedisQueue],
) -> None:
    client, queue = gateway_without_workers
    await queue.redis.set(queue.keys.runtimes, b'{"reported": true, "languages": [{"name": "cobol"}]}')
    response = await client.get("/v1/languages")
    assert response.status_code == 200
    assert response.json()["reported"] is False


def test_the_endpoint_is_in_the_openapi_document(api: httpx.Client) -> None:
    operation = api.get("/openapi.json").json()["paths"]["/v1/languages"]["get"]
    assert operation["summary"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Runtimes"
    }


def test_the_report_says_how_the_workers_limit_calls(api: httpx.Client) -> None:
    reported_languages(api)
    report = api.get("/v1/languages").json()
    # The root test worker on a cgroup v1 host (this project's CI) must have found its cgroups.
    expected = {"cgroup_v1"} if HOST_HAS_CGROUP_V1 else {"cgroup_v2", "cgroup_v1", "rlimit"}
    assert report["sandbox_limits"] in expected
