#!/usr/bin/python3
"""docker-compose 1.29 with `security_opt: [systempaths=unconfined]` understood the way Docker's CLI does.

Docker's CLI and `docker compose` v2 turn that option into empty MaskedPaths/ReadonlyPaths before creating
the container; docker-py (under compose 1.x) forwards it verbatim and the daemon rejects it
(docker/docker-py#3377). This wrapper applies the CLI's translation, then runs docker-compose unchanged,
so one compose file serves both. Use it only where the v2 plugin is not installable (Debian bookworm).
"""

import sys

from compose.cli.main import main
from docker.types.containers import HostConfig

UNCONFINED = "systempaths=unconfined"
_original_init = HostConfig.__init__


def _init_with_system_paths(self: HostConfig, *args: object, **kwargs: object) -> None:
    _original_init(self, *args, **kwargs)
    options = self.get("SecurityOpt") or []
    if UNCONFINED in options:
        self["SecurityOpt"] = [option for option in options if option != UNCONFINED]
        self["MaskedPaths"] = []
        self["ReadonlyPaths"] = []


HostConfig.__init__ = _init_with_system_paths

if __name__ == "__main__":
    sys.exit(main())
