"""What rollout code imports to call Sandpit: `SandpitClient` (sync) and `AsyncSandpitClient`."""

from service.client.calls import Retry, SandpitError
from service.client.http import AsyncSandpitClient, SandpitClient

__all__ = ["AsyncSandpitClient", "Retry", "SandpitClient", "SandpitError"]
