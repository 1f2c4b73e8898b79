"""The one way hostops runs a program: an argv list (never a shell), a timeout that kills the
whole process group, and domain errors."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

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
    daemonizes: bool = False,
) -> RunResult:
    """Run ``argv`` without a shell and return its result.

    ``env`` adds to (or overrides) the current environment. ``input`` is fed to stdin, which is
    otherwise /dev/null. Past ``timeout`` seconds the process group (the command and everything
    it started) is killed and CommandTimeout raised. A non-zero exit raises CommandFailed when
    ``check`` is true; a program that does not exist always raises CommandFailed (status 127).
    ``daemonizes``: the command leaves a background process behind that inherits its output
    (``btrfs scrub start``), so the result is the command's own exit and what it wrote by then,
    read from files, rather than waiting for pipes that the background process keeps open.
    """
    args = _checked_argv(argv)
    started = time.monotonic()
    if daemonizes:
        returncode, stdout, stderr = _execute_daemonizing(args, timeout=timeout, env=env)
    else:
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
    proc = _start(args, piped_stdin=input is not None, env=env)
    try:
        stdout, stderr = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(proc)
        raise CommandTimeout(f"{args[0]} ran past {timeout:g}s and was killed") from exc
    except BaseException:  # KeyboardInterrupt, SystemExit: never leave the command running
        _kill_group(proc)
        raise
    return proc.returncode, stdout, stderr


def _execute_daemonizing(args: list[str], *, timeout: float, env: Mapping[str, str] | None) -> tuple[int, str, str]:
    """Wait for the command itself, its output going to unlinked files its daemon may keep."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = _start(args, piped_stdin=False, env=env, stdout=out, stderr=err)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            _kill_group(proc)
            raise CommandTimeout(f"{args[0]} ran past {timeout:g}s and was killed") from exc
        except BaseException:
            _kill_group(proc)
            raise
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read()


def _start(
    args: list[str],
    *,
    piped_stdin: bool,
    env: Mapping[str, str] | None,
    stdout: IO[str] | int = subprocess.PIPE,
    stderr: IO[str] | int = subprocess.PIPE,
) -> subprocess.Popen[str]:
    """Start the command without a shell, in its own session (so its group can be killed)."""
    try:
        return subprocess.Popen(
            args,
            stdin=subprocess.PIPE if piped_stdin else subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, **env} if env is not None else None,
            start_new_session=True,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
    except FileNotFoundError as exc:
        raise CommandFailed(args, 127, "", f"{args[0]}: command not found") from exc


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


def run_streaming(
    argv: Sequence[str],
    on_line: Callable[[str, str], None],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    interrupt_grace: float = 0.0,
    spool: bool = False,
) -> int:
    """Run ``argv`` without a shell and hand each output line to ``on_line(stream, line)`` as it
    comes (stream is "stdout" or "stderr", the line without its newline); return the exit status.

    Lines reach ``on_line`` in this thread, in the order they were read. ``env`` and stdin are as
    in run(). Past ``timeout`` seconds the process group is killed and CommandTimeout raised;
    an exception from ``on_line`` also kills the group, then propagates. ``interrupt_grace``:
    the group first gets SIGINT and this many seconds to stop on its own (restic then removes
    its lock), SIGKILL after. A program that does not exist raises CommandFailed (status 127).

    ``spool``: the command writes into unlinked files that this thread reads as they grow,
    instead of into pipes. Should this process die, a pipe's next write would kill the command
    with SIGPIPE (a Go program such as restic, even while it cleans up after a death signal);
    a file takes the writes, and the command ends the way its signal asks.
    """
    args = _checked_argv(argv)
    deadline = time.monotonic() + timeout
    with contextlib.ExitStack() as files:
        if spool:
            (out, out_reader), (err, err_reader) = _spool_file(files), _spool_file(files)
            try:
                proc = _start(args, piped_stdin=False, env=env, stdout=out, stderr=err)
            finally:
                os.close(out)  # the command holds its own copies
                os.close(err)
        else:
            proc = _start(args, piped_stdin=False, env=env)
        try:
            if spool:
                _pump_spooled(proc, [("stdout", out_reader), ("stderr", err_reader)], on_line, deadline=deadline)
            else:
                _pump(proc, on_line, deadline=deadline)
        except _Overdue as exc:
            _kill_streaming(proc, interrupt_grace)
            raise CommandTimeout(f"{args[0]} ran past {timeout:g}s and was stopped") from exc
        except BaseException:
            _kill_streaming(proc, interrupt_grace)
            raise
        return proc.wait()


# How often a spooled command's files are read for new lines.
_SPOOL_POLL_SECONDS = 0.05


def _spool_file(stack: contextlib.ExitStack) -> tuple[int, IO[bytes]]:
    """An unlinked temporary file as a write descriptor for the command and a reader of its own
    (two open file descriptions, so each has its own offset)."""
    writer, path = tempfile.mkstemp(prefix="hostops-output-")
    try:
        reader = stack.enter_context(open(path, "rb", buffering=0))  # noqa: SIM115  (closed by the stack)
    finally:
        os.unlink(path)
    return writer, reader


def _pump_spooled(
    proc: subprocess.Popen[str],
    readers: list[tuple[str, IO[bytes]]],
    on_line: Callable[[str, str], None],
    *,
    deadline: float,
) -> None:
    """Deliver the lines of the spool files as they grow, until the command has exited and
    everything it wrote is read; raises _Overdue at the deadline."""
    partial = {name: b"" for name, _ in readers}
    while True:
        exited = proc.poll() is not None  # before reading: what it wrote before exiting is read below
        grew = False
        for name, reader in readers:
            while chunk := reader.read(1 << 20):
                grew = True
                *lines, partial[name] = (partial[name] + chunk).split(b"\n")
                for line in lines:
                    on_line(name, _text(line))
        if exited and not grew:
            break
        if time.monotonic() >= deadline:
            raise _Overdue
        if not grew:
            time.sleep(_SPOOL_POLL_SECONDS)
    for name, rest in partial.items():
        if rest:
            on_line(name, _text(rest))


def _text(line: bytes) -> str:
    """A spooled line as run() decodes output: UTF-8, bad bytes replaced, no CR before the LF."""
    return line.removesuffix(b"\r").decode("utf-8", errors="replace")


def _kill_streaming(proc: subprocess.Popen[str], interrupt_grace: float = 0.0) -> None:
    """Stop the group (SIGINT and a grace period first, when asked) and reap the command; the
    reader threads (daemons) own the pipes and end when they close, so nothing here reads them."""
    if interrupt_grace > 0:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=interrupt_grace)
            return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=_DRAIN_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class _Overdue(Exception):
    """The deadline of run_streaming passed."""


def _pump(proc: subprocess.Popen[str], on_line: Callable[[str, str], None], *, deadline: float) -> None:
    """One reader thread per pipe feeds a queue; this thread delivers the lines until both pipes
    close and the command has exited, or raises _Overdue at the deadline."""
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    pipes = [(name, pipe) for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)) if pipe is not None]
    for name, pipe in pipes:
        threading.Thread(target=_read_lines, args=(name, pipe, lines), daemon=True).start()
    open_pipes = len(pipes)
    while open_pipes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Overdue
        try:
            name, line = lines.get(timeout=remaining)
        except queue.Empty:
            raise _Overdue from None
        if line is None:
            open_pipes -= 1
        else:
            on_line(name, line)
    try:
        proc.wait(timeout=max(deadline - time.monotonic(), 0.001))
    except subprocess.TimeoutExpired:
        raise _Overdue from None


def _read_lines(name: str, pipe: IO[str], lines: queue.Queue[tuple[str, str | None]]) -> None:
    """Put every line of ``pipe`` on the queue, then None once it closes."""
    try:
        for line in pipe:
            lines.put((name, line.rstrip("\n")))
    finally:
        lines.put((name, None))


class Service:
    """A long-running program started by ``start_service`` (a server under test or bench), in a
    session of its own, so that stopping it stops everything it started."""

    def __init__(self, args: list[str], process: subprocess.Popen[bytes]) -> None:
        self.args = args
        self._process = process

    @property
    def pid(self) -> int:
        return self._process.pid

    def exit_status(self) -> int | None:
        """Its exit status once it has ended, else None."""
        return self._process.poll()

    def wait(self, timeout: float) -> int:
        """Its exit status; past ``timeout`` seconds its group is killed and CommandTimeout raised."""
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop(grace=0)
            raise CommandTimeout(f"{self.args[0]} ran past {timeout:g}s and was killed") from None

    def stop(self, *, grace: float = 15.0) -> None:
        """SIGTERM to its process group, then SIGKILL to what is left after ``grace`` seconds."""
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()


def start_service(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    output: IO[bytes] | int = subprocess.DEVNULL,
) -> Service:
    """Start ``argv`` without a shell and return at once. ``env`` is its whole environment (a
    server measured as production runs it inherits nothing of the caller's); its output goes to
    ``output`` (a file opened for binary writing), or nowhere."""
    args = _checked_argv(argv)
    try:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=output, stderr=output, env=dict(env), cwd=cwd, start_new_session=True
        )
    except FileNotFoundError as exc:
        raise CommandFailed(args, 127, "", f"{args[0]}: command not found") from exc
    return Service(args, process)
