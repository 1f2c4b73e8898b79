"""A workspace on a BTRFS storage root: starting it makes the member's home and scratch
subvolumes (owned by them, in their qgroup) and the real container mounts them, so what the
member writes inside lands in the subvolume and counts against their usage."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker as docker_sdk
import pytest

from hostops import btrfs
from portal.models import Host, User
from storage.models import MemberStorage
from storage.usage import usage_pass
from tests.loopfs import LoopFs, loop_btrfs, needs_loop_devices
from tests.storage.conftest import point_settings_at, wipe
from tests.workspaces.test_lifecycle_docker import create_and_run

pytestmark = [pytest.mark.docker, pytest.mark.loopdev, needs_loop_devices]


@pytest.fixture(scope="module")
def loop_fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopFs]:
    with loop_btrfs(tmp_path_factory.mktemp("wsstorage")) as made:
        btrfs.quota_enable(made.mount)
        yield made


@pytest.fixture
def btrfs_storage(engine: docker_sdk.DockerClient, host: Host, settings, loop_fs: LoopFs) -> Iterator[str]:  # type: ignore[no-untyped-def]
    root = os.path.join(loop_fs.mount, "srv")
    os.mkdir(root)
    point_settings_at(settings, root)
    yield root
    # The containers go first: a subvolume still bind-mounted in one is never cleaned up.
    for container in engine.containers.list(all=True, filters={"label": f"portal.host={host.name}"}):
        container.remove(force=True)
    wipe(loop_fs.mount, root)
    os.rmdir(root)


def test_a_started_workspace_mounts_the_members_own_subvolumes(
    engine: docker_sdk.DockerClient, btrfs_storage: str, member: User, host: Host, django_capture_on_commit_callbacks
) -> None:
    workspace = create_and_run(member, host, django_capture_on_commit_callbacks)

    home = Path(btrfs_storage, "homes", member.username)
    scratch = Path(btrfs_storage, "scratch", member.username)
    assert btrfs.is_subvolume(str(home))
    assert btrfs.is_subvolume(str(scratch))
    assert (home.stat().st_uid, home.stat().st_gid) == (member.uid, member.uid)
    row = MemberStorage.objects.get(user=member)
    assert (row.kind, row.qgroup) == (MemberStorage.Kind.SUBVOLUME, f"1/{member.uid}")

    container = engine.containers.get(workspace.container_name)
    code, output = container.exec_run(
        ["sh", "-c", f"stat -c '%u %a' /home/{member.username} && head -c 3145728 /dev/urandom > /scratch/run.bin"],
        user=str(member.uid),
    )
    assert code == 0, output
    assert output.decode().split("\n")[0] == f"{member.uid} 750"
    assert (scratch / "run.bin").stat().st_size == 3 * 1024 * 1024

    btrfs.qgroup_show(btrfs_storage, sync=True)
    usage_pass()
    row.refresh_from_db()
    assert row.scratch_referenced is not None
    assert row.scratch_referenced >= 3 * 1024 * 1024
