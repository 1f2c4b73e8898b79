"""The one way hostops runs a program: an argv list (never a shell), a timeout that kills the
whole process group, and domain errors."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hostops.errors import CommandFailed, CommandTimeout

# After a kill, how long to wait for the pipes to close before giving up on the output.
_DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class RunResult:
    """What a finished command left: its exit status, decoded output and wall time in seconds."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration: float


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> RunResult:
    """Run ``argv`` without a shell and return its result.

    ``env`` adds to (or overrides) the current environment. ``input`` is fed to stdin, which is
    otherwise /dev/null. Past ``timeout`` seconds the process group (the command and everything
    it started) is killed and CommandTimeout raised. A non-zero exit raises CommandFailed when
    ``check`` is true; a program that does not exist always raises CommandFailed (status 127).
    """
    args = _checked_argv(argv)
    started = time.monotonic()
    returncode, stdout, stderr = _execute(args, timeout=timeout, input=input, env=env)
    result = RunResult(args, returncode, stdout, stderr, time.monotonic() - started)
    if check and returncode != 0:
        raise CommandFailed(args, returncode, stdout, stderr)
    return result


def _checked_argv(argv: Sequence[str]) -> list[str]:
    """A copy of argv as a list of str; a bare string is refused, since it smells of a shell line."""
    if isinstance(argv, str | bytes):
        raise TypeError("run() takes an argv list, not a string")
    args = list(argv)
    if not args or not all(isinstance(arg, str) for arg in args):
        raise TypeError("run() takes a non-empty list of str")
    return args


def _execute(
    args: list[str],
    *,
    timeout: float,
    input: str | None,
    env: Mapping[str, str] | None,
) -> tuple[int, str, str]:
    """Start the command in its own session (so its group can be killed) and collect its output."""
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **env} if env is not None else None,
            start_new_session=True,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
    except FileNotFoundError as exc:
        raise CommandFailed(args, 127, "", f"{args[0]}: command not found") from exc
    try:
        stdout, stderr = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(proc)
        raise CommandTimeout(f"{args[0]} ran past {timeout:g}s and was killed") from exc
    except BaseException:  # KeyboardInterrupt, SystemExit: never leave the command running
        _kill_group(proc)
        raise
    return proc.returncode, stdout, stderr


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the command's process group, then reap it (bounded: a daemonised escapee may hold
    the pipes open)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=_DRAIN_SECONDS)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
