"""The real OpenSSH client, as a member runs it against a workspace's published port."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

SSH = shutil.which("ssh") or "/usr/bin/ssh"
OPTIONS = ("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes")
# The connection died before sshd's banner or was refused: on a starved CI machine Docker's
# port proxy can drop the very first connection. Authentication errors are never retried.
_TRANSPORT_ERRORS = ("kex_exchange_identification", "Connection refused", "Connection reset by peer")


def ssh_argv(key: Path, port: int, user: str, *command: str) -> list[str]:
    return [SSH, "-i", str(key), "-p", str(port), *OPTIONS, "-o", "ConnectTimeout=10", f"{user}@127.0.0.1", *command]


def ssh_run(key: Path, port: int, user: str, *command: str, attempts: int = 3) -> subprocess.CompletedProcess[str]:
    """Run ``command`` over SSH; a connection lost before the handshake is tried again."""
    for attempt in range(1, attempts + 1):
        result = subprocess.run(
            ssh_argv(key, port, user, *command), capture_output=True, text=True, timeout=60, check=False
        )
        transport_failed = result.returncode == 255 and any(e in result.stderr for e in _TRANSPORT_ERRORS)
        if not transport_failed or attempt == attempts:
            return result
        time.sleep(1)
    raise AssertionError("unreachable")
