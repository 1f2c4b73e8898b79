"""hostops.run against real programs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hostops.errors import CommandFailed, CommandTimeout
from hostops.run import run, run_streaming, start_service


def test_it_returns_the_output_and_status_of_a_successful_command() -> None:
    result = run(["sh", "-c", "echo out; echo err >&2"], timeout=10)
    assert result.returncode == 0
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.argv == ["sh", "-c", "echo out; echo err >&2"]
    assert 0 <= result.duration < 10


def test_true_succeeds_with_empty_output() -> None:
    result = run(["true"], timeout=5)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_a_non_zero_exit_raises_command_failed_with_the_status_and_output() -> None:
    with pytest.raises(CommandFailed) as excinfo:
        run(["sh", "-c", "echo boom >&2; exit 3"], timeout=5)
    assert excinfo.value.returncode == 3
    assert excinfo.value.stderr == "boom\n"
    assert "exited 3: boom" in str(excinfo.value)


def test_false_with_check_off_returns_its_status() -> None:
    result = run(["false"], timeout=5, check=False)
    assert result.returncode == 1


def test_it_feeds_input_to_stdin() -> None:
    assert run(["cat"], timeout=5, input="hello\nworld\n").stdout == "hello\nworld\n"


def test_stdin_is_empty_without_input() -> None:
    assert run(["cat"], timeout=5).stdout == ""


def test_it_collects_a_lot_of_output_on_both_streams_without_deadlock() -> None:
    result = run(["sh", "-c", "seq 1 300000; seq 1 300000 >&2"], timeout=30)
    assert result.stdout.splitlines()[-1] == "300000"
    assert len(result.stdout) == len(result.stderr) > 1_900_000


def test_env_adds_to_the_inherited_environment() -> None:
    result = run(["sh", "-c", 'echo "$H4_VALUE:$PATH"'], timeout=5, env={"H4_VALUE": "x y"})
    assert result.stdout == f"x y:{os.environ['PATH']}\n"


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"ran past 0\.5s"):
        run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], timeout=0.5)
    assert time.monotonic() - started < 5
    child = int(pidfile.read_text())
    assert _gone_or_zombie(child)


def test_a_string_argv_is_refused() -> None:
    with pytest.raises(TypeError, match="argv list"):
        run("echo hi", timeout=5)  # type: ignore[arg-type]


def test_an_argv_with_a_non_string_element_is_refused() -> None:
    with pytest.raises(TypeError):
        run(["echo", 3], timeout=5)  # type: ignore[list-item]


def test_shell_metacharacters_are_passed_literally() -> None:
    assert run(["echo", "a; rm -rf /tmp/nothing && $(id)"], timeout=5).stdout == "a; rm -rf /tmp/nothing && $(id)\n"


def test_a_missing_program_raises_command_failed_127() -> None:
    with pytest.raises(CommandFailed) as excinfo:
        run(["h4-no-such-program"], timeout=5, check=False)
    assert excinfo.value.returncode == 127


def test_a_command_that_leaves_a_daemon_holding_its_output_returns_when_it_exits(tmp_path: Path) -> None:
    """``btrfs scrub start`` forks the scrub into the background, and the child keeps the
    output it inherited: waiting for the pipes to close would wait for the whole scrub."""
    pid_file = tmp_path / "daemon.pid"
    started = time.monotonic()
    result = run(
        ["sh", "-c", f"sleep 30 & echo $! > {pid_file}; echo started; echo note >&2"], timeout=10, daemonizes=True
    )
    try:
        assert time.monotonic() - started < 5
        assert (result.returncode, result.stdout, result.stderr) == (0, "started\n", "note\n")
    finally:
        os.kill(int(pid_file.read_text()), 9)


def test_a_daemonizing_command_past_its_timeout_is_killed() -> None:
    with pytest.raises(CommandTimeout):
        run(["sleep", "30"], timeout=0.3, daemonizes=True)


def _gone_or_zombie(pid: int) -> bool:
    """SIGKILL is delivered asynchronously: the child closes its pipes (which ends the drain) a
    moment before the kernel marks it a zombie, so allow it a short while to finish dying."""
    deadline = time.monotonic() + 3
    while not _dead(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _dead(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


# --- run_streaming ----------------------------------------------------------------------------


@pytest.fixture(params=[False, True], ids=["pipes", "spooled"])
def spool(request: pytest.FixtureRequest) -> bool:
    """Each streaming test runs with pipes and with spool files."""
    return bool(request.param)


def test_streaming_hands_over_each_line_of_both_streams_and_returns_the_status(spool: bool) -> None:
    seen: list[tuple[str, str]] = []
    status = run_streaming(
        ["sh", "-c", "echo one; echo two >&2; echo three; exit 4"],
        lambda stream, line: seen.append((stream, line)),
        timeout=10,
        spool=spool,
    )
    assert status == 4
    assert [line for stream, line in seen if stream == "stdout"] == ["one", "three"]
    assert [line for stream, line in seen if stream == "stderr"] == ["two"]


def test_streaming_delivers_lines_while_the_command_still_runs(spool: bool) -> None:
    arrivals: list[float] = []
    started = time.monotonic()
    run_streaming(
        ["sh", "-c", "echo a; sleep 1; echo b"],
        lambda stream, line: arrivals.append(time.monotonic()),
        timeout=10,
        spool=spool,
    )
    assert len(arrivals) == 2
    assert arrivals[0] - started < 0.8 < arrivals[1] - started


def test_streaming_passes_env_and_keeps_stdin_empty(spool: bool) -> None:
    seen: list[str] = []
    run_streaming(
        ["sh", "-c", 'echo "$H4_VALUE"; cat'],
        lambda stream, line: seen.append(line),
        timeout=5,
        env={"H4_VALUE": "v"},
        spool=spool,
    )
    assert seen == ["v"]


def test_streaming_copes_with_a_lot_of_output_on_both_streams(spool: bool) -> None:
    counts = {"stdout": 0, "stderr": 0}

    def count(stream: str, line: str) -> None:
        counts[stream] += 1

    assert run_streaming(["sh", "-c", "seq 1 100000; seq 1 100000 >&2"], count, timeout=30, spool=spool) == 0
    assert counts == {"stdout": 100000, "stderr": 100000}


def test_a_streaming_timeout_kills_the_whole_process_group(tmp_path: Path, spool: bool) -> None:
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"ran past 0\.5s"):
        run_streaming(
            ["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], lambda stream, line: None, timeout=0.5, spool=spool
        )
    assert time.monotonic() - started < 5
    assert _gone_or_zombie(int(pidfile.read_text()))


def test_an_exception_in_on_line_kills_the_command_and_propagates(tmp_path: Path, spool: bool) -> None:
    pidfile = tmp_path / "child.pid"

    def refuse(stream: str, line: str) -> None:
        raise RuntimeError("enough")

    with pytest.raises(RuntimeError, match="enough"):
        run_streaming(["sh", "-c", f"echo $$ > {pidfile}; echo go; sleep 60"], refuse, timeout=30, spool=spool)
    assert _gone_or_zombie(int(pidfile.read_text()))


def test_streaming_a_missing_program_raises_command_failed_127(spool: bool) -> None:
    with pytest.raises(CommandFailed) as excinfo:
        run_streaming(["h4-no-such-program"], lambda stream, line: None, timeout=5, spool=spool)
    assert excinfo.value.returncode == 127


def test_streaming_refuses_a_string_argv(spool: bool) -> None:
    with pytest.raises(TypeError, match="argv list"):
        run_streaming("echo hi", lambda stream, line: None, timeout=5, spool=spool)  # type: ignore[arg-type]


def test_a_spooled_line_without_its_newline_and_a_carriage_return_arrive_as_lines() -> None:
    seen: list[tuple[str, str]] = []
    run_streaming(
        ["sh", "-c", r"printf 'one\r\ntwo'; printf 'oops' >&2"],
        lambda stream, line: seen.append((stream, line)),
        timeout=5,
        spool=True,
    )
    assert sorted(seen) == [("stderr", "oops"), ("stdout", "one"), ("stdout", "two")]


_CALLER = """
import sys
from hostops.run import run_streaming
show = lambda stream, line: print(line, flush=True)
run_streaming(["sh", "-c", sys.argv[1]], show, timeout=60, spool=sys.argv[2] == "1")
"""


@pytest.mark.parametrize(("spool", "finishes"), [(False, False), (True, True)], ids=["pipes", "spooled"])
def test_a_command_whose_caller_is_killed_dies_of_a_broken_pipe_unless_spooled(
    tmp_path: Path, spool: bool, finishes: bool
) -> None:
    """What restic meets when its worker is SIGKILLed and it writes as it stops: with pipes the
    write kills it (SIGPIPE); spooled, it writes on and ends as it would have."""
    started, done = tmp_path / "started", tmp_path / "done"
    script = f"echo up; touch {started}; sleep 1; echo stopping; echo stopping >&2; touch {done}"
    root = Path(__file__).resolve().parents[2]
    caller = subprocess.Popen(
        [sys.executable, "-c", _CALLER, script, "1" if spool else "0"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not started.exists():
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.05)
    caller.kill()
    caller.wait()
    time.sleep(2)  # the command's second left, and a margin
    assert done.exists() == finishes


def test_a_service_runs_until_stopped_and_stopping_it_ends_what_it_started(tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {child_pid}; wait"
    service = start_service(["bash", "-c", script], env={"PATH": os.environ["PATH"]})
    deadline = time.monotonic() + 10
    while not child_pid.exists() or not child_pid.read_text().strip():
        assert time.monotonic() < deadline, "the service never started its child"
        time.sleep(0.05)
    assert service.exit_status() is None
    service.stop(grace=5)
    assert service.exit_status() is not None
    child = int(child_pid.read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child}").exists() and Path(f"/proc/{child}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "the service's child outlived the stop"
        time.sleep(0.05)


def test_a_service_gets_only_the_environment_it_is_given_and_a_late_wait_kills_it() -> None:
    done = start_service(["bash", "-c", 'test -z "$HOME" && test "$ONLY" = yes'], env={"ONLY": "yes"})
    assert done.wait(timeout=10) == 0
    hung = start_service(["sleep", "30"], env={"PATH": os.environ["PATH"]})
    with pytest.raises(CommandTimeout, match=r"sleep ran past 0\.5s"):
        hung.wait(timeout=0.5)
    assert hung.exit_status() is not None
