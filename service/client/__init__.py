"""What rollout code imports to call Sandpit: `SandpitClient` (sync) and `AsyncSandpitClient`."""

from service.client.http import AsyncSandpitClient, SandpitClient, SandpitError

__all__ = ["AsyncSandpitClient", "SandpitClient", "SandpitError"]
