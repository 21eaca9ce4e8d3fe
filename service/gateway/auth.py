"""API keys, tenants and their per-gateway rate limits.

Keys are stored only as sha256 digests (a keys file, or `SANDPIT_API_KEYS`); a request names its key
in `Authorization: Bearer <key>` or `X-API-Key: <key>`. Without any configured key the API is open
and every caller is the tenant `anonymous`. The authenticated tenant is kept in a context variable
for the request, so the one place that enqueues jobs (`calls.enqueue`) can count them against it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import HTTPException, Request

from service.config import Settings

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Tenant:
    name: str
    max_in_flight: int
    rate_per_s: float


@dataclass
class TokenBucket:
    """`rate` calls per second, bursts up to one second's worth."""

    rate: float
    tokens: float = 0.0
    updated: float = field(default_factory=time.monotonic)

    def take(self) -> float:
        """0 if a call may go now, else the seconds until it may."""
        now = time.monotonic()
        self.tokens = min(max(self.rate, 1.0), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class TooManyRequests(Exception):
    def __init__(self, reason: str, retry_after_s: float, tenant: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.tenant = tenant

    @property
    def retry_after(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Tenants:
    def __init__(self, settings: Settings) -> None:
        self.default = Tenant(ANONYMOUS, settings.tenant_max_in_flight, settings.tenant_rate_per_s)
        self.by_digest = load_tenants(settings)
        self.buckets: dict[str, TokenBucket] = {}

    @property
    def open(self) -> bool:
        return not self.by_digest

    def authenticate(self, key: str | None) -> Tenant:
        if self.open:
            return self.default
        if not key:
            raise HTTPException(
                401,
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        digest = hash_key(key)
        for known, tenant in self.by_digest.items():
            if hmac.compare_digest(known, digest):
                return tenant
        raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})

    def check_rate(self, tenant: Tenant) -> None:
        if tenant.rate_per_s <= 0:
            return
        bucket = self.buckets.setdefault(tenant.name, TokenBucket(tenant.rate_per_s, tokens=tenant.rate_per_s))
        wait_s = bucket.take()
        if wait_s > 0:
            raise TooManyRequests("rate_limit", wait_s, tenant.name)


def load_tenants(settings: Settings) -> dict[str, Tenant]:
    """sha256 digest -> tenant, from the keys file and the inline list."""
    tenants: dict[str, Tenant] = {}
    if settings.api_keys_file is not None:
        document = json.loads(Path(settings.api_keys_file).read_text())
        for entry in document["tenants"]:
            tenant = Tenant(
                entry["name"],
                int(entry.get("max_in_flight", settings.tenant_max_in_flight)),
                float(entry.get("rate_per_s", settings.tenant_rate_per_s)),
            )
            tenants[entry["key_sha256"].lower()] = tenant
    for pair in filter(None, (item.strip() for item in settings.api_keys.split(","))):
        name, _, digest = pair.partition(":")
        if not digest:
            raise ValueError(f"SANDPIT_API_KEYS entry {name!r} is not name:sha256")
        tenants[digest.lower()] = Tenant(name, settings.tenant_max_in_flight, settings.tenant_rate_per_s)
    return tenants


current_tenant: ContextVar[Tenant] = ContextVar("current_tenant")


def presented_key(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return request.headers.get("x-api-key")


async def authenticate(request: Request) -> Tenant:
    """Router dependency: who is calling, and may they call now."""
    tenants: Tenants = request.app.state.gateway.tenants
    tenant = tenants.authenticate(presented_key(request))
    admit(tenants, tenant)
    return tenant


def admit(tenants: Tenants, tenant: Tenant) -> None:
    """Count a call of a known tenant against its rate limit (429 if over) and make it the request's caller."""
    tenants.check_rate(tenant)
    current_tenant.set(tenant)
