"""hostops.docker against the real dockerd (marker: docker)."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker.errors
import pytest
import requests

from hostops import docker as hd
from hostops.docker.parse import state_from_summary
from hostops.errors import (
    CommandTimeout,
    EngineUnreachable,
    HostOpsError,
    ImageMissing,
    NotFound,
    PortTaken,
)
from hostops.types import ContainerSpec, GpuRequest, Mount
from tests.hostops.conftest import MIB, SLIM_IMAGE, SpecFactory, member_env

pytestmark = pytest.mark.docker

CGROUP = Path("/sys/fs/cgroup")


# --- pure ---------------------------------------------------------------------------------


def _spec(**changes: object) -> ContainerSpec:
    spec = ContainerSpec(
        name="ws-alice", image="portal/workspace:1", hostname="alice", labels={"a": "1", "b": "2"},
        environment={"X": "1"}, user_uid=1234, user_gid=1234, mem_reservation=1, mem_limit=2,
        memswap_limit=3, cpuset_cpus="0-3", pids_limit=100, gpus=GpuRequest(("GPU-1",)),
        mounts=(Mount("/srv/home/alice", "/home/alice"),), ports={"22/tcp": 2222},
    )  # fmt: skip
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


def test_the_spec_hash_is_deterministic_and_ignores_dict_order() -> None:
    reordered = _spec(labels={"b": "2", "a": "1"})
    assert hd.spec_hash(_spec()) == hd.spec_hash(reordered)
    assert len(hd.spec_hash(_spec())) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"mem_limit": 4},
        {"gpus": GpuRequest(("GPU-2",))},
        {"environment": {"X": "2"}},
        {"mounts": (Mount("/srv/home/alice", "/home/alice", read_only=True),)},
        {"ports": {"22/tcp": 2223}},
        {"command": ("sleep", "1")},
    ],
)
def test_any_change_to_the_spec_changes_its_hash(change: dict[str, object]) -> None:
    assert hd.spec_hash(_spec(**change)) != hd.spec_hash(_spec())


def test_a_list_summary_becomes_a_container_state() -> None:
    summary = {
        "Id": "abc", "Names": ["/ws-alice"], "State": "exited", "Status": "Exited (137) 2 minutes ago",
        "Labels": {"portal.workspace": "7"}, "Ports": [{"PrivatePort": 22, "PublicPort": 2222, "Type": "tcp"}],
    }  # fmt: skip
    state = state_from_summary(summary)
    assert (state.name, state.status, state.running, state.exit_code) == ("ws-alice", "exited", False, 137)
    assert state.ports == {"22/tcp": 2222}
    healthy = state_from_summary({**summary, "State": "running", "Status": "Up 3 minutes (health: starting)"})
    assert (healthy.running, healthy.exit_code, healthy.health) == (True, None, "starting")


# --- engine -------------------------------------------------------------------------------


def test_engine_info_reports_cpus_memory_and_version(docker_url: str) -> None:
    info = hd.engine_info(docker_url=docker_url)
    assert info.cpus >= 1
    assert info.memory_bytes > 256 * MIB
    assert info.server_version[0].isdigit()


def test_an_unreachable_engine_raises_engine_unreachable(tmp_path: Path) -> None:
    with pytest.raises(EngineUnreachable, match="does not answer"):
        hd.engine_info(docker_url=f"unix://{tmp_path}/no-docker.sock")


def test_an_unsupported_url_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported docker_url"):
        hd.engine_info(docker_url="http://example.invalid:2375")


# --- ensure_container ---------------------------------------------------------------------


def test_ensure_container_twice_keeps_one_container_with_the_same_id(docker_url: str, make_spec: SpecFactory) -> None:
    spec = make_spec()
    first = hd.ensure_container(spec, docker_url=docker_url)
    second = hd.ensure_container(spec, docker_url=docker_url)
    assert first.id == second.id
    assert second.running
    assert second.labels[hd.SPEC_HASH_LABEL] == hd.spec_hash(spec)
    assert [s.id for s in hd.list_by_label(f"portal.test={spec.labels['portal.test']}", docker_url=docker_url)] == [
        first.id
    ]


def test_ensure_container_starts_a_stopped_container_without_recreating_it(
    docker_url: str, make_spec: SpecFactory
) -> None:
    spec = make_spec()
    first = hd.ensure_container(spec, docker_url=docker_url)
    hd.stop(spec.name, docker_url=docker_url, timeout=1)
    assert not hd.inspect(spec.name, docker_url=docker_url).running
    again = hd.ensure_container(spec, docker_url=docker_url)
    assert (again.id, again.running) == (first.id, True)


def test_a_changed_spec_recreates_the_container(docker_url: str, make_spec: SpecFactory) -> None:
    events: list[str] = []
    first = hd.ensure_container(make_spec(), docker_url=docker_url)
    changed = make_spec(mem_limit=300 * MIB)
    second = hd.ensure_container(changed, docker_url=docker_url, stop_timeout=1, on_event=events.append)
    assert second.id != first.id
    assert second.running
    assert second.labels[hd.SPEC_HASH_LABEL] == hd.spec_hash(changed)
    assert any("recreating" in event for event in events)
    with pytest.raises(NotFound):
        hd.inspect(first.id, docker_url=docker_url)


def test_a_rebuilt_image_tag_recreates_the_container(
    docker_url: str, make_spec: SpecFactory, tmp_path: Path, built_tag: str
) -> None:
    (tmp_path / "Dockerfile").write_text("FROM portal/debian-base:bookworm\nLABEL build=1\n")
    _build(tmp_path, built_tag, docker_url)
    spec = make_spec(image=built_tag)
    first = hd.ensure_container(spec, docker_url=docker_url)
    assert hd.ensure_container(spec, docker_url=docker_url).id == first.id
    (tmp_path / "Dockerfile").write_text("FROM portal/debian-base:bookworm\nLABEL build=2\n")
    _build(tmp_path, built_tag, docker_url)
    second = hd.ensure_container(spec, docker_url=docker_url, stop_timeout=1)
    assert second.id != first.id
    assert second.running


def test_concurrent_ensures_of_one_spec_end_with_one_container(docker_url: str, make_spec: SpecFactory) -> None:
    spec = make_spec()
    with ThreadPoolExecutor(max_workers=3) as pool:
        states = list(pool.map(lambda _i: hd.ensure_container(spec, docker_url=docker_url), range(3)))
    assert len({state.id for state in states}) == 1
    assert len(hd.list_by_label(f"portal.test={spec.labels['portal.test']}", docker_url=docker_url)) == 1


def test_ensure_container_can_create_without_starting(docker_url: str, make_spec: SpecFactory) -> None:
    state = hd.ensure_container(make_spec(), docker_url=docker_url, start=False)
    assert (state.status, state.running, state.exit_code) == ("created", False, None)


def test_limits_are_set_in_the_engine_and_in_the_cgroup(docker_url: str, make_spec: SpecFactory) -> None:
    spec = make_spec(pids_limit=123, labels={"portal.test": make_spec().labels["portal.test"], "portal.kind": "x"})
    state = hd.ensure_container(spec, docker_url=docker_url)
    host = hd._client(docker_url).api.inspect_container(state.id)["HostConfig"]
    assert host["Memory"] == 256 * MIB
    assert host["MemoryReservation"] == 128 * MIB
    assert host["MemorySwap"] == 512 * MIB
    assert host["CpusetCpus"] == "0"
    assert host["PidsLimit"] == 123
    assert host["Init"] is True
    assert state.labels["portal.kind"] == "x"
    limits = _cgroup_limits(state.id)
    assert limits == {"memory": 256 * MIB, "reservation": 128 * MIB, "swap": 256 * MIB, "cpus": "0", "pids": 123}


def test_a_runtime_is_asked_of_the_engine_by_name(docker_url: str, make_spec: SpecFactory) -> None:
    state = hd.ensure_container(make_spec(runtime="runc"), docker_url=docker_url)
    assert hd._client(docker_url).api.inspect_container(state.id)["HostConfig"]["Runtime"] == "runc"


def test_an_unknown_runtime_is_refused_by_the_engine_in_words(docker_url: str, make_spec: SpecFactory) -> None:
    with pytest.raises(HostOpsError, match="sysbox-runc"):
        hd.ensure_container(make_spec(runtime="sysbox-runc"), docker_url=docker_url)


def test_a_published_port_answers(docker_url: str, make_spec: SpecFactory) -> None:
    spec = make_spec(
        image=SLIM_IMAGE, environment=member_env(), ports={"8000/tcp": 0},
        command=("python3", "-m", "http.server", "8000"),
    )  # fmt: skip
    hd.ensure_container(spec, docker_url=docker_url)
    port = hd.inspect(spec.name, docker_url=docker_url).ports["8000/tcp"]
    body = _get_with_retry(f"http://127.0.0.1:{port}/", seconds=20)
    assert "Directory listing" in body


def test_a_host_port_bound_by_another_process_is_reported_as_port_taken(
    docker_url: str, make_spec: SpecFactory, busy_port: int
) -> None:
    with pytest.raises(PortTaken, match="already"):
        hd.ensure_container(make_spec(ports={"22/tcp": busy_port}), docker_url=docker_url)


def test_a_missing_image_is_reported_as_image_missing(docker_url: str, make_spec: SpecFactory) -> None:
    spec = make_spec(image="portal/no-such-image:never")
    with pytest.raises(ImageMissing):
        hd.ensure_container(spec, docker_url=docker_url)
    with pytest.raises(NotFound):
        hd.inspect(spec.name, docker_url=docker_url)


def test_a_reservation_above_the_limit_is_refused_with_the_engines_reason(
    docker_url: str, make_spec: SpecFactory
) -> None:
    with pytest.raises(HostOpsError, match="memory reservation"):
        hd.ensure_container(make_spec(mem_reservation=512 * MIB), docker_url=docker_url)


# --- single containers --------------------------------------------------------------------


def test_inspecting_a_missing_container_raises_not_found(docker_url: str) -> None:
    with pytest.raises(NotFound):
        hd.inspect("h4t-no-such-container", docker_url=docker_url)


def test_remove_of_a_missing_container_raises_unless_missing_is_ok(docker_url: str) -> None:
    with pytest.raises(NotFound):
        hd.remove("h4t-no-such-container", docker_url=docker_url)
    hd.remove("h4t-no-such-container", docker_url=docker_url, missing_ok=True)


def test_a_stopped_container_ensured_again_runs_anew_and_remove_deletes_it(
    docker_url: str, make_spec: SpecFactory
) -> None:
    spec = make_spec()
    created = hd.ensure_container(spec, docker_url=docker_url)
    before = hd.inspect(spec.name, docker_url=docker_url).started_at
    hd.stop(spec.name, docker_url=docker_url, timeout=1)
    stopped = hd.inspect(spec.name, docker_url=docker_url)
    assert (stopped.status, stopped.exit_code) == ("exited", 143)
    hd.ensure_container(spec, docker_url=docker_url)
    after = hd.inspect(spec.name, docker_url=docker_url)
    assert after.running
    assert before is not None
    assert after.started_at is not None
    assert after.started_at > before
    hd.remove(spec.name, docker_url=docker_url, force=True)
    with pytest.raises(NotFound):
        hd.inspect(created.id, docker_url=docker_url)


def test_exec_run_returns_the_status_and_output(docker_url: str, make_spec: SpecFactory) -> None:
    spec = make_spec()
    hd.ensure_container(spec, docker_url=docker_url)
    assert hd.exec_run(spec.name, ["sh", "-c", "echo hi; exit 3"], docker_url=docker_url, timeout=10) == (3, "hi\n")
    assert hd.exec_run(spec.name, ["id", "-u"], docker_url=docker_url, user="1234", timeout=10) == (0, "1234\n")


def test_exec_run_past_its_timeout_raises_command_timeout(docker_url: str, make_spec: SpecFactory) -> None:
    spec = make_spec()
    hd.ensure_container(spec, docker_url=docker_url)
    started = time.monotonic()
    with pytest.raises(CommandTimeout):
        hd.exec_run(spec.name, ["sleep", "30"], docker_url=docker_url, timeout=1)
    assert time.monotonic() - started < 10


def test_logs_return_the_tail_of_the_output(docker_url: str, make_spec: SpecFactory) -> None:
    # stdout and stderr are separate pipes: the pause keeps their order in the log certain.
    spec = make_spec(command=("sh", "-c", "seq 1 50; sleep 0.3; echo oops >&2; sleep infinity"))
    hd.ensure_container(spec, docker_url=docker_url)
    deadline = time.monotonic() + 10
    while "oops" not in hd.logs(spec.name, docker_url=docker_url, tail=3) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hd.logs(spec.name, docker_url=docker_url, tail=3) == "49\n50\noops\n"


def test_stats_report_memory_in_use_and_the_limit(docker_url: str, make_spec: SpecFactory) -> None:
    spec = make_spec()
    hd.ensure_container(spec, docker_url=docker_url)
    sample = hd.stats(spec.name, docker_url=docker_url)
    assert sample is not None
    assert sample.mem_limit == 256 * MIB
    assert 0 < sample.mem_used < sample.mem_limit
    assert 0.0 <= sample.cpu_percent < 200.0


def test_list_by_label_makes_one_api_call_for_twenty_containers(
    docker_url: str, make_spec: SpecFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = [make_spec(f"n{i}") for i in range(20)]
    for spec in specs:
        hd.ensure_container(spec, docker_url=docker_url, start=False)
    api = hd._client(docker_url).api
    sent: list[str] = []
    real_send = api.send

    def counting_send(request: object, **kwargs: object) -> object:
        sent.append(getattr(request, "url", ""))
        return real_send(request, **kwargs)

    monkeypatch.setattr(api, "send", counting_send)
    states = hd.list_by_label(f"portal.test={specs[0].labels['portal.test']}", docker_url=docker_url)
    assert len(sent) == 1
    assert sorted(s.name for s in states) == sorted(s.name for s in specs)
    assert all(s.status == "created" and s.labels[hd.SPEC_HASH_LABEL] for s in states)


def test_list_by_label_with_several_labels_needs_all_of_them(docker_url: str, make_spec: SpecFactory) -> None:
    run = make_spec().labels["portal.test"]
    hd.ensure_container(make_spec("a", labels={"portal.test": run, "role": "a"}), docker_url=docker_url, start=False)
    hd.ensure_container(make_spec("b", labels={"portal.test": run, "role": "b"}), docker_url=docker_url, start=False)
    states = hd.list_by_label([f"portal.test={run}", "role=b"], docker_url=docker_url)
    assert [s.name for s in states] == [make_spec("b").name]


# --- readiness ----------------------------------------------------------------------------


def test_wait_healthy_returns_when_a_container_without_healthcheck_runs(
    docker_url: str, make_spec: SpecFactory
) -> None:
    spec = make_spec()
    hd.ensure_container(spec, docker_url=docker_url)
    state = hd.wait_healthy(spec.name, docker_url=docker_url, timeout=10)
    assert state.running
    assert state.health is None


def test_wait_healthy_runs_a_probe_when_the_image_has_no_healthcheck(docker_url: str, make_spec: SpecFactory) -> None:
    spec = make_spec(command=("sh", "-c", "sleep 1; touch /tmp/ready; sleep infinity"))
    hd.ensure_container(spec, docker_url=docker_url)
    hd.wait_healthy(spec.name, docker_url=docker_url, timeout=15, probe=["test", "-e", "/tmp/ready"])
    assert hd.exec_run(spec.name, ["test", "-e", "/tmp/ready"], docker_url=docker_url, timeout=5)[0] == 0


def test_wait_healthy_raises_with_the_log_when_the_container_dies(docker_url: str, make_spec: SpecFactory) -> None:
    # The slim image has a HEALTHCHECK, so the container is "starting" until it dies.
    command = ("sh", "-c", "sleep 1; echo cannot go on >&2; exit 5")
    spec = make_spec(image=SLIM_IMAGE, environment=member_env(), command=command)
    hd.ensure_container(spec, docker_url=docker_url)
    with pytest.raises(HostOpsError, match="exited with status 5: cannot go on"):
        hd.wait_healthy(spec.name, docker_url=docker_url, timeout=15)


def test_wait_healthy_gives_up_after_its_timeout(docker_url: str, make_spec: SpecFactory) -> None:
    spec = make_spec()
    hd.ensure_container(spec, docker_url=docker_url, start=False)
    started = time.monotonic()
    with pytest.raises(HostOpsError, match="not healthy after 2s"):
        hd.wait_healthy(spec.name, docker_url=docker_url, timeout=2)
    assert time.monotonic() - started < 6


# --- images -------------------------------------------------------------------------------


def test_image_inspect_reports_labels_and_missing_tags(docker_url: str, test_images: None) -> None:
    info = hd.image_inspect(SLIM_IMAGE, docker_url=docker_url)
    assert SLIM_IMAGE in info.tags
    assert len(info.labels["portal.build-hash"]) == 16
    with pytest.raises(ImageMissing):
        hd.image_inspect("portal/no-such-image:never", docker_url=docker_url)


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A host port held by a plain listening socket, as another program would."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", 0))  # noqa: S104  (Docker publishes on all addresses)
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def built_tag(docker_url: str, run_label: str) -> Iterator[str]:
    tag = f"portal/h4-build-test:{run_label}"
    yield tag
    api = hd._client(docker_url).api
    with contextlib.suppress(NotFound, docker.errors.NotFound):  # a failed build leaves no image
        api.remove_image(tag, force=True)


def _build(context: Path, tag: str, docker_url: str) -> None:
    """Build ``context`` into ``tag`` with the SDK (the portal builds no images itself)."""
    hd._client(docker_url).images.build(path=str(context), tag=tag, rm=True, forcerm=True)


def _cgroup_limits(container_id: str) -> dict[str, object]:
    """The container's limits as the kernel enforces them (cgroup v1 or v2 layout)."""
    v1 = CGROUP / "memory" / "docker" / container_id
    if v1.is_dir():
        read = lambda controller, name: (CGROUP / controller / "docker" / container_id / name).read_text().strip()  # noqa: E731
        memory = int(read("memory", "memory.limit_in_bytes"))
        return {
            "memory": memory,
            "reservation": int(read("memory", "memory.soft_limit_in_bytes")),
            "swap": int(read("memory", "memory.memsw.limit_in_bytes")) - memory,
            "cpus": read("cpuset", "cpuset.cpus"),
            "pids": int(read("pids", "pids.max")),
        }
    for v2 in (CGROUP / "system.slice" / f"docker-{container_id}.scope", CGROUP / "docker" / container_id):
        if v2.is_dir():
            read2 = lambda name: (v2 / name).read_text().strip()  # noqa: E731, B023
            return {
                "memory": int(read2("memory.max")),
                "reservation": int(read2("memory.low")),
                "swap": int(read2("memory.swap.max")),
                "cpus": read2("cpuset.cpus"),
                "pids": int(read2("pids.max")),
            }
    raise AssertionError(f"no cgroup found for {container_id}")


def _get_with_retry(url: str, *, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return requests.get(url, timeout=2).text
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
