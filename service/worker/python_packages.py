"""Run by the sandbox's interpreter, not the worker's: print what that interpreter can import, as JSON.

The output is one object, distribution name -> version, in the order `import` would find them (the
first of two copies wins, as it would on import). Debian builds a few packages (mpmath, kiwisolver) with
a placeholder 0.0.0 in their metadata; for those the module's own `__version__` is the truth. Standard
library only: this file runs under whatever interpreter `python_path` names.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json

PLACEHOLDER_VERSION = "0.0.0"


def module_version(distribution: importlib.metadata.Distribution) -> str | None:
    for name in (distribution.read_text("top_level.txt") or "").split():
        try:
            version = getattr(importlib.import_module(name), "__version__", None)
        except Exception:  # any failure of a third-party import only means no better version
            continue
        if isinstance(version, str):
            return version
    return None


def installed_packages() -> dict[str, str]:
    packages: dict[str, str] = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if not name or name in packages:
            continue
        version = distribution.version
        if version == PLACEHOLDER_VERSION:
            version = module_version(distribution) or version
        packages[name] = version
    return dict(sorted(packages.items(), key=lambda item: item[0].lower()))


if __name__ == "__main__":
    print(json.dumps(installed_packages()))
