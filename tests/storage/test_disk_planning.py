"""The disk planning page, its reading of the disks and its apply Operation, on real loop devices:
the worker reads and stores the disks (DiskScan), the page plans from the stored reading and never
asks the host, an apply needs a fresh reading; the plan, the typed confirmation, the refusals (in
use, old signatures, a second apply, a stale reading, disks changed before the worker starts) and
the filesystem the worker makes."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import current_app
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from hostops import btrfs
from hostops import disks as hd
from hostops.errors import CommandFailed
from hostops.run import run
from portal.audit import SYSTEM
from portal.models import AuditEvent, Host, Notification, Operation, User
from portal.operations import QUEUE_DOWN
from storage import planning
from storage.disk_tasks import disk_plan_apply_task, disk_scan_task
from storage.models import DiskScan
from storage.planning import DiskChoice, DiskPlanError, DiskScanBusy
from tests.loopfs import MIB, attach, detach, needs_loop_devices

pytestmark = [pytest.mark.loopdev, needs_loop_devices]

LOOP_SIZE = 300 * MIB
Sent = list[tuple[str, list[Any], dict[str, Any], str]]


# --- loop devices -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Five loop devices over sparse 300 MiB images, detached at the end (also on failure)."""
    folder = tmp_path_factory.mktemp("disks")
    with ExitStack() as stack:
        devices = []
        for index in range(5):
            image = folder / f"disk{index}.img"
            stack.callback(image.unlink, missing_ok=True)
            devices.append(attach(image, LOOP_SIZE))
            stack.callback(detach, devices[-1])
            stack.callback(_forget, devices[-1])
        yield devices


def _forget(device: str) -> None:
    run(["btrfs", "device", "scan", "--forget", device], timeout=30, check=False)


@pytest.fixture
def blank(loops: list[str], settings: Any) -> Iterator[list[str]]:
    """The five loops unmounted and without signatures, before and after the test; loop devices
    are candidates (STORAGE_DISKS_INCLUDE_LOOP), as they never are on a real server."""
    settings.STORAGE_DISKS_INCLUDE_LOOP = True
    for device in loops:
        _unmount_all(device)
        _wipe(device)
    try:
        yield loops
    finally:
        for device in loops:
            _unmount_all(device)
            _forget(device)
            _wipe(device)


def _unmount_all(device: str) -> None:
    """Whatever is mounted from ``device``; a btrfs lists one member only, so by UUID too."""
    uuid_ = _uuid(device)
    for line in reversed(Path("/proc/self/mounts").read_text().splitlines()):
        source, target = line.split()[:2]
        if source == device or (uuid_ and source.startswith("/dev/loop") and _uuid(source) == uuid_):
            run(["umount", target.replace("\\040", " ")], timeout=60, check=False)


def _uuid(device: str) -> str:
    return run(["blkid", "-p", "-o", "value", "-s", "UUID", device], timeout=30, check=False).stdout.strip()


def _wipe(device: str) -> None:
    """wipefs opens the device exclusively, which can fail for a moment after an unmount."""
    for _ in range(5):
        if run(["wipefs", "-a", "-q", device], timeout=30, check=False).returncode == 0:
            return
        time.sleep(0.5)
    run(["wipefs", "-a", "-q", device], timeout=30)


def _signatures(devices: list[str]) -> dict[str, tuple[str, ...]]:
    found = {disk.path: disk for disk in hd.list_disks()}
    return {device: found[device].signatures for device in devices}


def _mounted_btrfs(device: str, where: Path) -> None:
    run(["mkfs.btrfs", "-q", "-f", "-L", "old", device], timeout=120)
    where.mkdir()
    run(["mount", device, str(where)], timeout=60)


def _scan() -> DiskScan:
    """The worker's reading of the disks, stored (run in-process: lsblk and wipefs for real)."""
    scan = planning.disk_scan_store(Host.local())
    assert scan.error == "", scan.error
    return scan


def _survey() -> planning.Survey:
    return planning.disk_survey(_scan())


# --- the service --------------------------------------------------------------------------


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    """The tasks sent to the broker (name, args, kwargs, queue), instead of sending them."""
    messages: Sent = []

    def send_task(name: str, args: list[Any], kwargs: dict[str, Any] | None = None, queue: str = "", **_: Any) -> None:
        messages.append((name, args, kwargs or {}, queue))

    monkeypatch.setattr(current_app, "send_task", send_task)
    return messages


def _label() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def _choice(devices: list[str], tmp_path: Path, **changes: Any) -> DiskChoice:
    return DiskChoice(tuple(devices), label=_label(), mount_target=str(tmp_path / "mnt"), **changes)


def _apply(choice: DiskChoice, admin: User, typed: str, confirmed: tuple[str, ...] = ()) -> Operation:
    return planning.disk_plan_apply(
        devices=choice.devices,
        profile=choice.profile,
        label=choice.label,
        mount_target=choice.mount_target,
        confirmed_disks=confirmed,
        typed_confirmation=typed,
        actor=admin,
        context=SYSTEM,
    )


def _names(devices: list[str]) -> str:
    return " ".join(device.removeprefix("/dev/") for device in devices)


def test_the_plan_for_four_free_loop_disks_is_raid10_with_its_usable_capacity(
    blank: list[str], tmp_path: Path, db: None
) -> None:
    survey = _survey()
    rows = {row.disk.path: row for row in survey.rows}
    assert all(rows[device].usable and rows[device].reasons == [] for device in blank)
    assert rows[blank[0]].contents == []
    plan = planning.disk_plan(survey, _choice(blank[:4], tmp_path))
    assert (plan.profile, plan.devices, plan.usable_bytes) == ("raid10", tuple(blank[:4]), 2 * LOOP_SIZE)
    assert plan.confirmation == f"wipe {_names(blank[:4])}"
    assert plan.commands[0] == ["mkfs.btrfs", "-L", plan.label, "-d", "raid10", "-m", "raid10", *blank[:4]]
    assert plan.mount_target == str(tmp_path / "mnt")


def test_loop_devices_are_no_candidates_unless_the_setting_is_on(
    blank: list[str], tmp_path: Path, settings: Any, db: None
) -> None:
    settings.STORAGE_DISKS_INCLUDE_LOOP = False
    survey = _survey()
    assert not set(blank) & {row.disk.path for row in survey.rows}
    with pytest.raises(DiskPlanError, match=f"{blank[0]}: not free for an array"):
        planning.disk_plan(survey, _choice(blank[:1], tmp_path))


def test_the_mount_target_defaults_to_the_storage_root(blank: list[str], settings: Any, db: None) -> None:
    settings.STORAGE_ROOT = "/srv/portal-test-root"
    plan = planning.disk_plan(_survey(), DiskChoice(tuple(blank[:2])))
    assert plan.mount_target == "/srv/portal-test-root"
    assert plan.profile == "raid1"


def test_a_chosen_profile_replaces_the_one_by_count_and_too_few_disks_are_refused(
    blank: list[str], tmp_path: Path, db: None
) -> None:
    survey = _survey()
    plan = planning.disk_plan(survey, _choice(blank[:4], tmp_path, profile="raid1"))
    assert (plan.profile, plan.usable_bytes) == ("raid1", 2 * LOOP_SIZE)
    assert plan.commands[0][:7] == ["mkfs.btrfs", "-L", plan.label, "-d", "raid1", "-m", "raid1"]
    with pytest.raises(DiskPlanError, match="raid10 needs at least 4 free disks; 2 are free to use"):
        planning.disk_plan(survey, _choice(blank[:2], tmp_path, profile="raid10"))
    with pytest.raises(DiskPlanError, match="'raid5' is not a profile"):
        planning.disk_plan(survey, _choice(blank[:4], tmp_path, profile="raid5"))


def test_applying_after_the_typed_confirmation_makes_the_raid10_filesystem(
    blank: list[str], tmp_path: Path, admin_user: User, sent: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    choice = _choice(blank[:4], tmp_path)
    _scan()
    with django_capture_on_commit_callbacks(execute=True):
        operation = _apply(choice, admin_user, f"wipe {_names(blank[:4])}")
    assert [(name, args, queue) for name, args, _, queue in sent] == [
        ("storage.disk_tasks.disk_plan_apply_task", [operation.pk], Host.local().queue)
    ]
    assert (operation.kind, operation.target_label, operation.state) == ("storage.disks_apply", "local", "queued")
    audit = AuditEvent.objects.get(action="storage.disks_apply")
    assert (audit.actor, audit.detail["devices"], audit.detail["profile"]) == (admin_user, blank[:4], "raid10")

    disk_plan_apply_task.run(operation.pk, **sent[0][2])
    operation.refresh_from_db()
    assert (operation.state, operation.percent) == ("succeeded", 100), f"{operation.message}\n{operation.log}"
    target = str(tmp_path / "mnt")
    try:
        shown = btrfs.filesystem_show(blank[0])
        assert (shown.label, shown.total_devices) == (choice.label, 4)
        assert sorted(device.path for device in shown.devices) == sorted(blank[:4])
        usage = btrfs.filesystem_usage(target)
        assert (usage.data_profile, usage.metadata_profile) == ("RAID10", "RAID10")
        assert sorted(os.listdir(target)) == sorted(hd.SUBVOLUMES)
        assert f"$ mkfs.btrfs -L {choice.label} -d raid10 -m raid10 {' '.join(blank[:4])}\n" in operation.log
        assert f"$ btrfs subvolume create {target}/portal\n" in operation.log
        assert f"LABEL={choice.label} {target} btrfs defaults 0 0" in operation.log
        assert operation.message.startswith(f"Done: btrfs raid10 over 4 disks, mounted at {target}")
        assert Notification.objects.filter(user=admin_user, title="The disk plan was applied").exists()

        # A second delivery of the same message finds the row final and runs nothing again.
        disk_plan_apply_task.run(operation.pk, **sent[0][2])
        operation.refresh_from_db()
        assert operation.log.count("$ mkfs.btrfs") == 1
        assert operation.attempts == 1
    finally:
        btrfs.umount(target)


@pytest.mark.parametrize("typed", ["", "wipe", "WIPE {names}", "wipe {names} ", "wipe {first}", "wipe {label}"])
def test_a_wrong_confirmation_is_refused_and_nothing_is_queued(
    blank: list[str], tmp_path: Path, admin_user: User, sent: Sent, django_capture_on_commit_callbacks: Any, typed: str
) -> None:
    choice = _choice(blank[:4], tmp_path)
    typed = typed.format(names=_names(blank[:4]), first=_names(blank[:1]), label=choice.label)
    expected = f"wipe {_names(blank[:4])}"
    refusal = re.escape(f"does not match: type {expected!r}. Nothing was queued.")
    _scan()
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(DiskPlanError, match=refusal):
        _apply(choice, admin_user, typed)
    assert (callbacks, sent) == ([], [])
    assert not Operation.objects.exists()
    assert not AuditEvent.objects.filter(action="storage.disks_apply").exists()
    assert _signatures(blank[:4]) == dict.fromkeys(blank[:4], ())
    assert not (tmp_path / "mnt").exists()


def test_a_mounted_disk_is_refused_as_in_use(blank: list[str], tmp_path: Path, admin_user: User, sent: Sent) -> None:
    _mounted_btrfs(blank[4], tmp_path / "old")
    survey = _survey()
    row = next(row for row in survey.rows if row.disk.path == blank[4])
    assert (row.usable, row.reasons) == (False, [f"mounted at {tmp_path / 'old'}"])
    assert row.contents == [f"btrfs filesystem at {tmp_path / 'old'}"]
    assert blank[4] not in planning.disk_plan(survey, _choice([], tmp_path)).devices
    choice = _choice(blank, tmp_path)
    with pytest.raises(DiskPlanError, match=f"{blank[4]} \\(mounted at {tmp_path / 'old'}\\): not free for an array"):
        _apply(choice, admin_user, f"wipe {_names(blank)}", confirmed=(blank[4],))
    assert not Operation.objects.exists()
    assert sent == []


def test_a_disk_with_an_old_signature_is_wiped_only_once_confirmed_by_name(
    blank: list[str], tmp_path: Path, admin_user: User, sent: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    run(["mkfs.btrfs", "-q", "-f", "-L", "old", blank[4]], timeout=120)
    survey = _survey()
    row = next(row for row in survey.rows if row.disk.path == blank[4])
    assert (row.usable, row.reasons) == (True, ["holds an old btrfs signature (a filesystem, RAID or LVM)"])
    choice = _choice(blank, tmp_path)
    plan = planning.disk_plan(survey, choice)
    assert plan.needs_confirmation == {blank[4]: ["holds an old btrfs signature (a filesystem, RAID or LVM)"]}
    typed = f"wipe {_names(blank)}"
    with pytest.raises(DiskPlanError, match=f"{blank[4]} holds old signatures: tick it by name"):
        _apply(choice, admin_user, typed)
    with pytest.raises(DiskPlanError, match=f"{blank[0]}: nothing to confirm there"):
        _apply(choice, admin_user, typed, confirmed=(blank[0], blank[4]))
    assert not Operation.objects.exists()
    assert _signatures(blank[4:]) == {blank[4]: ("btrfs",)}

    with django_capture_on_commit_callbacks(execute=True):
        operation = _apply(choice, admin_user, typed, confirmed=(blank[4].removeprefix("/dev/"),))
    disk_plan_apply_task.run(operation.pk, **sent[0][2])
    operation.refresh_from_db()
    try:
        assert operation.state == "succeeded", f"{operation.message}\n{operation.log}"
        assert f"$ wipefs -a {blank[4]}\n" in operation.log
        assert btrfs.filesystem_show(blank[4]).total_devices == 5
    finally:
        btrfs.umount(str(tmp_path / "mnt"))


def test_a_second_apply_while_one_is_queued_is_refused(
    blank: list[str], tmp_path: Path, admin_user: User, sent: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    _scan()
    with django_capture_on_commit_callbacks(execute=True):
        first = _apply(_choice(blank[:2], tmp_path), admin_user, f"wipe {_names(blank[:2])}")
    with pytest.raises(DiskPlanError, match="Another apply is queued \\(started by ada\\); wait until it ends"):
        _apply(_choice(blank[2:4], tmp_path), admin_user, f"wipe {_names(blank[2:4])}")
    Operation.objects.filter(pk=first.pk).update(state=Operation.State.RUNNING)
    with pytest.raises(DiskPlanError, match="Another apply is running"):
        _apply(_choice(blank[2:4], tmp_path), admin_user, f"wipe {_names(blank[2:4])}")
    assert list(Operation.objects.values_list("pk", flat=True)) == [first.pk]
    assert len(sent) == 1


def test_the_worker_refuses_when_a_disk_was_mounted_after_the_confirmation(
    blank: list[str], tmp_path: Path, admin_user: User, sent: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    _scan()
    with django_capture_on_commit_callbacks(execute=True):
        operation = _apply(_choice(blank[:4], tmp_path), admin_user, f"wipe {_names(blank[:4])}")
    _mounted_btrfs(blank[3], tmp_path / "old")
    disk_plan_apply_task.run(operation.pk, **sent[0][2])
    operation.refresh_from_db()
    assert operation.state == "failed"
    assert operation.error.startswith("The disks changed since the plan was confirmed:")
    assert f"{blank[3]} (mounted at {tmp_path / 'old'})" in operation.error
    assert "$ " not in operation.log
    assert _signatures(blank[:3]) == dict.fromkeys(blank[:3], ())
    assert not (tmp_path / "mnt").exists()
    assert Notification.objects.filter(user=admin_user, title="The disk plan was not applied").exists()


def test_the_worker_runs_the_plan_it_rebuilds_never_commands_from_the_row(
    blank: list[str], tmp_path: Path, admin_user: User, sent: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    _scan()
    with django_capture_on_commit_callbacks(execute=True):
        operation = _apply(_choice(blank[:2], tmp_path), admin_user, f"wipe {_names(blank[:2])}")
    params = {**operation.params, "commands": [["touch", str(tmp_path / "owned")]]}
    Operation.objects.filter(pk=operation.pk).update(params=params)
    disk_plan_apply_task.run(operation.pk, **params)
    operation.refresh_from_db()
    assert operation.state == "failed"
    assert "the commands would differ from those confirmed" in operation.error
    assert not (tmp_path / "owned").exists()
    assert "$ " not in operation.log


def test_a_failing_command_fails_the_operation_with_its_output_in_the_log(
    blank: list[str], tmp_path: Path, admin_user: User, sent: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    _scan()
    with django_capture_on_commit_callbacks(execute=True):
        operation = _apply(_choice(blank[:2], tmp_path), admin_user, f"wipe {_names(blank[:2])}")
    (tmp_path / "mnt").write_text("a file where the mount point should be")
    disk_plan_apply_task.run(operation.pk, **sent[0][2])
    operation.refresh_from_db()
    assert operation.state == "failed"
    assert operation.error.startswith(f"`mkdir -p {tmp_path}/mnt` failed (exit 1)")
    assert "$ mkfs.btrfs" in operation.log
    assert "cannot create directory" in operation.log
    assert 0 < operation.percent < 100


def test_the_apply_fails_at_once_with_words_when_the_queue_is_down(
    blank: list[str],
    tmp_path: Path,
    admin_user: User,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    def down(*_: Any, **__: Any) -> None:
        raise ConnectionError("redis is away")

    monkeypatch.setattr(current_app, "send_task", down)
    _scan()
    with django_capture_on_commit_callbacks(execute=True):
        operation = _apply(_choice(blank[:2], tmp_path), admin_user, f"wipe {_names(blank[:2])}")
    assert (operation.state, operation.message) == ("failed", QUEUE_DOWN)
    operation.refresh_from_db()
    assert operation.state == "failed"
    _apply(_choice(blank[:2], tmp_path), admin_user, f"wipe {_names(blank[:2])}")  # not blocked by the failed one


# --- the page -----------------------------------------------------------------------------


def _query(devices: list[str], tmp_path: Path, label: str = "data", **extra: str) -> dict[str, Any]:
    return {"devices": devices, "profile": "auto", "label": label, "mount_target": str(tmp_path / "mnt"), **extra}


def test_the_page_shows_the_disks_the_plan_its_commands_and_the_exact_confirmation(
    blank: list[str], tmp_path: Path, admin_client: Client
) -> None:
    run(["mkfs.btrfs", "-q", "-f", "-L", "old", blank[4]], timeout=120)
    _scan()
    response = admin_client.get(reverse("storage:disks"), _query(blank, tmp_path, label="pool"))
    assert response.status_code == 200
    page = response.content.decode()
    names = " ".join(blank)
    assert f"mkfs.btrfs -L pool -d raid10 -m raid10 {names}" in page
    assert f"wipefs -a {blank[4]}" in page
    assert f'<code class="confirm-text">wipe {_names(blank)}</code>' in page
    assert f'value="{blank[4]}"' in page
    assert "holds an old btrfs signature" in page
    assert "bcache" in page
    assert "300M" in page  # the size, for people
    assert "# btrfs raid10 over 5 disks, about 0.8 GB (0.7 GiB) usable" in page
    assert "Loop device" in page
    plan = response.context["plan"]
    assert response.context["apply_form"]["plan_digest"].value() == planning.plan_digest(plan)


def test_the_page_without_a_query_plans_on_every_free_disk(
    blank: list[str], admin_client: Client, settings: Any
) -> None:
    _scan()
    response = admin_client.get(reverse("storage:disks"))
    assert response.status_code == 200
    plan = response.context["plan"]
    assert set(blank) <= set(plan.devices)  # other loop devices of this machine may be free too
    assert plan.mount_target == settings.STORAGE_ROOT


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("label", "a b", "Use letters, digits, &#x27;-&#x27; and &#x27;_&#x27;"),
        ("label", "", "Give the filesystem a label"),
        ("mount_target", "srv", "Give an absolute folder such as /srv"),
        ("mount_target", "/srv/../etc", "without &#x27;.&#x27; or &#x27;..&#x27; parts"),
        ("mount_target", "/srv; rm -rf /", "Give an absolute folder"),
        ("profile", "raid5", "Choose a profile."),
        ("devices", "/dev/sda9", "/dev/sda9 is not a free disk on this server"),
    ],
)
def test_bad_choices_on_the_page_are_explained(
    blank: list[str], tmp_path: Path, admin_client: Client, field: str, value: str, message: str
) -> None:
    query = _query(blank[:4], tmp_path)
    query[field] = value
    _scan()
    response = admin_client.get(reverse("storage:disks"), query)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert response.context["plan"] is None


def test_a_profile_the_disks_are_too_few_for_is_explained(
    blank: list[str], tmp_path: Path, admin_client: Client
) -> None:
    _scan()
    response = admin_client.get(reverse("storage:disks"), {**_query(blank[:2], tmp_path), "profile": "raid10"})
    assert response.status_code == 400
    assert "raid10 needs at least 4 free disks" in response.content.decode()


def _post(client: Client, data: dict[str, Any], capture: Callable[..., Any]) -> Any:
    with capture(execute=True):
        return client.post(reverse("storage:disks-apply"), data)


def test_applying_from_the_page_queues_the_operation_and_shows_its_progress(
    blank: list[str], tmp_path: Path, admin_client: Client, sent: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    _scan()
    plan = admin_client.get(reverse("storage:disks"), _query(blank[:4], tmp_path)).context["plan"]
    data = {
        **_query(blank[:4], tmp_path),
        "typed_confirmation": plan.confirmation,
        "plan_digest": planning.plan_digest(plan),
    }
    response = _post(admin_client, data, django_capture_on_commit_callbacks)
    assert (response.status_code, response["Location"]) == (302, reverse("storage:disks"))
    operation = Operation.objects.get()
    assert operation.params["devices"] == blank[:4]
    assert len(sent) == 1
    page = admin_client.get(reverse("storage:disks")).content.decode()
    assert "The plan is queued on the server&#x27;s worker" in page
    assert f'id="op-{operation.pk}"' in page
    assert reverse("operation-status", args=[operation.pk]) in page
    assert "Apply in progress" in page


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"typed_confirmation": None}, "Type the confirmation shown above the field"),
        ({"typed_confirmation": "yes"}, "The confirmation does not match: type &#x27;wipe "),
        ({"plan_digest": None}, "The page&#x27;s plan fingerprint is missing"),
        ({"plan_digest": "0" * 64}, "The disks changed since this page showed the plan"),
        ({"plan_digest": "<script>"}, "The page&#x27;s plan fingerprint is missing"),
        ({"devices": None}, "Tick at least one disk for the array."),
        ({"devices": "/dev/../etc/passwd"}, "/dev/../etc/passwd is not a free disk on this server"),
        ({"label": "-rf"}, "Use letters, digits"),
        ({"mount_target": "/"}, "Give an absolute folder such as /srv"),
        ({"confirmed_disks": "/dev/sda"}, "/dev/sda is not a disk of this plan"),
        ({"confirmed_disks": "{first}"}, "nothing to confirm there (no old signature)"),
    ],
)
def test_bad_apply_input_is_refused_with_words_and_nothing_is_queued(
    blank: list[str],
    tmp_path: Path,
    admin_client: Client,
    sent: Sent,
    django_capture_on_commit_callbacks: Any,
    change: dict[str, str | None],
    message: str,
) -> None:
    _scan()
    plan = admin_client.get(reverse("storage:disks"), _query(blank[:4], tmp_path)).context["plan"]
    data: dict[str, Any] = {
        **_query(blank[:4], tmp_path),
        "typed_confirmation": plan.confirmation,
        "plan_digest": planning.plan_digest(plan),
    }
    for key, value in change.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value.format(first=blank[0])
    response = _post(admin_client, data, django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Operation.objects.exists()
    assert sent == []
    assert _signatures(blank[:4]) == dict.fromkeys(blank[:4], ())


def test_an_empty_apply_is_bad_input(blank: list[str], admin_client: Client, sent: Sent) -> None:
    response = admin_client.post(reverse("storage:disks-apply"), {})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Tick at least one disk for the array." in page
    assert "Type the confirmation shown above the field" in page
    assert not Operation.objects.exists()


def test_members_may_not_see_or_apply_a_plan(blank: list[str], alice_client: Client, sent: Sent) -> None:
    assert alice_client.get(reverse("storage:disks")).status_code == 403
    assert alice_client.post(reverse("storage:disks-apply"), {"devices": blank[:4]}).status_code == 403
    assert not Operation.objects.exists()


@pytest.mark.django_db(transaction=True)  # real commits: the task is sent (and refused) inside the request
def test_the_page_says_so_when_the_job_queue_does_not_take_the_apply(
    blank: list[str], tmp_path: Path, admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_: Any, **__: Any) -> None:
        raise ConnectionError("redis is away")

    monkeypatch.setattr(current_app, "send_task", down)
    _scan()
    plan = admin_client.get(reverse("storage:disks"), _query(blank[:2], tmp_path)).context["plan"]
    data = {
        **_query(blank[:2], tmp_path),
        "typed_confirmation": plan.confirmation,
        "plan_digest": planning.plan_digest(plan),
    }
    response = admin_client.post(reverse("storage:disks-apply"), data, follow=True)
    assert response.redirect_chain == [(reverse("storage:disks"), 302)]
    assert "The job queue is not answering" in response.content.decode()
    assert Operation.objects.get().state == "failed"


def test_disks_that_cannot_be_read_are_explained_and_nothing_can_be_applied(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch, sent: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    def unreadable() -> list[hd.Disk]:
        raise CommandFailed(["lsblk"], 127, "", "lsblk: command not found")

    monkeypatch.setattr(hd, "list_disks", unreadable)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("storage:disks-scan"))
    operation = Operation.objects.get(kind=planning.SCAN_KIND)
    disk_scan_task.run(operation.pk)
    operation.refresh_from_db()
    assert operation.state == "failed"
    assert operation.error.startswith("The disks could not be read: ")
    scan = DiskScan.objects.get()
    assert (scan.operation_id, scan.disks, scan.error) == (operation.pk, [], operation.error)
    response = admin_client.get(reverse("storage:disks"))
    assert response.status_code == 200
    assert "The disks could not be read: " in response.content.decode()
    assert response.context["apply_form"] is None
    response = admin_client.post(reverse("storage:disks-apply"), {"typed_confirmation": "wipe sda"})
    assert response.status_code == 400
    assert not Operation.objects.filter(kind=planning.KIND).exists()


# --- reading the disks: the worker reads and stores, the page shows the stored rows ---------


def test_a_disk_stored_as_json_comes_back_exactly(blank: list[str], db: None) -> None:
    run(["mkfs.btrfs", "-q", "-f", "-L", "old", blank[4]], timeout=120)
    found = hd.list_disks()
    scan = _scan()
    scan.refresh_from_db()  # through PostgreSQL's jsonb, not just the Python dicts
    assert planning.disks_from_json(scan.disks) == found
    stored = {disk.path: disk for disk in planning.disks_from_json(scan.disks)}
    assert (stored[blank[4]].fstype, stored[blank[4]].signatures) == ("btrfs", ("btrfs",))
    nested = hd.Disk(
        name="sda",
        path="/dev/sda",
        size=4 * 10**12,
        rotational=True,
        model="WDC WD40EFRX",
        serial="WD-1",
        transport="sata",
        type="disk",
        signatures=("gpt", "PMBR"),
        probe_error="wipefs: /dev/sda: probing failed",
        removable=True,
        read_only=True,
        children=(
            hd.Disk(
                name="sda1",
                path="/dev/sda1",
                size=10**12,
                rotational=True,
                model="",
                serial="",
                transport="",
                type="part",
                mountpoints=("/", "/var/lib/docker"),
                fstype="ext4",
                uuid="0f3a",
                children=(hd.Disk("md0", "/dev/md0", 10**12, True, "", "", "", "raid1", ("[SWAP]",), "swap"),),
            ),
        ),
    )
    DiskScan.objects.filter(pk=scan.pk).update(disks=planning.disks_to_json([nested]))
    scan.refresh_from_db()
    assert planning.disks_from_json(scan.disks) == [nested]


def test_reading_the_disks_is_an_operation_the_worker_runs_and_stores(
    blank: list[str], admin_user: User, sent: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        operation = planning.disk_scan_request(actor=admin_user, context=SYSTEM)
    assert [(name, args, queue) for name, args, _, queue in sent] == [
        ("storage.disk_tasks.disk_scan_task", [operation.pk], Host.local().queue)
    ]
    assert (operation.kind, operation.target_label, operation.state) == ("storage.disks_scan", "local", "queued")
    assert AuditEvent.objects.get(action="storage.disks_scan").actor == admin_user
    assert not DiskScan.objects.exists()

    disk_scan_task.run(operation.pk, **sent[0][2])
    operation.refresh_from_db()
    assert operation.state == "succeeded", f"{operation.message}\n{operation.error}"
    scan = DiskScan.objects.get()
    assert (scan.host, scan.operation_id, scan.error) == (Host.local(), operation.pk, "")
    assert scan.bcache_supported == hd.bcache_supported()
    assert set(blank) <= {disk["path"] for disk in scan.disks}
    survey = planning.disk_survey(scan)
    assert set(blank) <= set(survey.candidates)
    assert (survey.host, survey.read_at, survey.stale) == ("local", scan.read_at, False)
    assert operation.message == f"Read {len(survey.rows)} disks on local; {len(survey.candidates)} free for an array"

    # A second delivery of the same message finds the row final and reads nothing again.
    disk_scan_task.run(operation.pk, **sent[0][2])
    assert DiskScan.objects.count() == 1
    operation.refresh_from_db()
    assert operation.attempts == 1


def test_a_second_reading_while_one_is_queued_is_refused_and_the_next_click_works(
    blank: list[str], admin_user: User, sent: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = planning.disk_scan_request(actor=admin_user, context=SYSTEM)
    with pytest.raises(DiskScanBusy, match="The disks are being read already \\(queued, asked by ada\\)"):
        planning.disk_scan_request(actor=admin_user, context=SYSTEM)
    assert list(Operation.objects.values_list("pk", flat=True)) == [first.pk]
    disk_scan_task.run(first.pk)
    with django_capture_on_commit_callbacks(execute=True):
        planning.disk_scan_request(actor=admin_user, context=SYSTEM)
    assert Operation.objects.count() == 2
    assert len(sent) == 2


def test_the_services_send_the_tasks_the_worker_registers() -> None:
    """By name (services never import tasks): a renamed task would leave every job queued."""
    assert (disk_scan_task.name, disk_plan_apply_task.name) == (planning.SCAN_TASK, planning.TASK)


def test_old_readings_are_dropped(blank: list[str], db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planning, "SCANS_KEPT", 2)
    scans = [_scan() for _ in range(3)]
    assert list(DiskScan.objects.values_list("pk", flat=True)) == [scans[2].pk, scans[1].pk]
    assert planning.disk_scan_latest() == scans[2]


def test_the_page_never_reads_the_host(
    blank: list[str],
    tmp_path: Path,
    admin_client: Client,
    sent: Sent,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """As in production, where the web container has no /dev: lsblk, wipefs and /sys are not asked."""
    _scan()

    def host_read(*_: Any, **__: Any) -> Any:
        raise AssertionError("the web process read the host")

    for name in ("list_disks", "bcache_supported", "run"):
        monkeypatch.setattr(hd, name, host_read)
    response = admin_client.get(reverse("storage:disks"), _query(blank[:4], tmp_path))
    assert response.status_code == 200
    plan = response.context["plan"]
    assert plan.devices == tuple(blank[:4])
    data = {
        **_query(blank[:4], tmp_path),
        "typed_confirmation": plan.confirmation,
        "plan_digest": planning.plan_digest(plan),
    }
    response = _post(admin_client, data, django_capture_on_commit_callbacks)
    assert response.status_code == 302
    assert Operation.objects.get().kind == planning.KIND


def test_the_page_shows_when_and_where_the_disks_were_read_and_offers_to_read_them_again(
    blank: list[str], admin_client: Client
) -> None:
    scan = _scan()
    page = admin_client.get(reverse("storage:disks")).content.decode()
    assert "read by the worker of <strong>local</strong> at" in page
    assert f'datetime="{scan.read_at.isoformat()}"' in page or scan.read_at.strftime("%Y-%m-%d") in page
    assert f'action="{reverse("storage:disks-scan")}"' in page
    assert "Read the disks again</button>" in page
    assert "Stale" not in page


def test_without_a_reading_the_page_says_so_and_offers_to_read_the_disks(
    blank: list[str], tmp_path: Path, admin_client: Client, sent: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    response = admin_client.get(reverse("storage:disks"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "The server&#x27;s disks have not been read yet" in page
    assert "Read the disks</button>" in page
    assert (response.context["plan"], response.context["apply_form"]) == (None, None)
    data = {**_query(blank[:2], tmp_path), "typed_confirmation": f"wipe {_names(blank[:2])}", "plan_digest": "0" * 64}
    response = _post(admin_client, data, django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert not Operation.objects.exists()


def test_applying_from_a_stale_reading_is_refused(
    blank: list[str], tmp_path: Path, admin_user: User, sent: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    scan = _scan()
    DiskScan.objects.filter(pk=scan.pk).update(read_at=timezone.now() - timedelta(minutes=11))
    with pytest.raises(DiskPlanError, match=r"The disks were read 11 minutes ago.* Read the disks again first"):
        _apply(_choice(blank[:2], tmp_path), admin_user, f"wipe {_names(blank[:2])}")
    assert not Operation.objects.exists()
    assert sent == []
    DiskScan.objects.filter(pk=scan.pk).update(read_at=timezone.now() - timedelta(minutes=9))
    with django_capture_on_commit_callbacks(execute=True):
        _apply(_choice(blank[:2], tmp_path), admin_user, f"wipe {_names(blank[:2])}")
    assert len(sent) == 1


def test_the_page_labels_a_stale_reading_and_its_apply_is_refused_with_words(
    blank: list[str], tmp_path: Path, admin_client: Client, sent: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    scan = _scan()
    plan = admin_client.get(reverse("storage:disks"), _query(blank[:2], tmp_path)).context["plan"]
    DiskScan.objects.filter(pk=scan.pk).update(read_at=timezone.now() - timedelta(minutes=30))
    response = admin_client.get(reverse("storage:disks"), _query(blank[:2], tmp_path))
    page = response.content.decode()
    assert '<span class="pill pill-warn">Stale</span>' in page
    assert 'disabled title="Read the disks again first"' in page
    assert response.context["plan"] == plan  # still shown, from the stored reading
    data = {
        **_query(blank[:2], tmp_path),
        "typed_confirmation": plan.confirmation,
        "plan_digest": planning.plan_digest(plan),
    }
    response = _post(admin_client, data, django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert "Read the disks again first" in response.content.decode()
    assert not Operation.objects.exists()
    assert sent == []


def test_applying_is_refused_after_an_apply_began_since_the_reading(
    blank: list[str], tmp_path: Path, admin_user: User, sent: Sent
) -> None:
    _scan()
    Operation.objects.create(
        kind=planning.KIND,
        actor=admin_user,
        state=Operation.State.FAILED,
        started=timezone.now(),
        finished=timezone.now(),
    )
    with pytest.raises(
        DiskPlanError, match=r"after the disks were read, so they may have changed\. Read the disks again"
    ):
        _apply(_choice(blank[:2], tmp_path), admin_user, f"wipe {_names(blank[:2])}")
    assert Operation.objects.count() == 1
    _scan()
    _apply(_choice(blank[:2], tmp_path), admin_user, f"wipe {_names(blank[:2])}")
    assert Operation.objects.count() == 2


def test_the_apply_leaves_a_new_reading_of_the_disks_for_the_page(
    blank: list[str],
    tmp_path: Path,
    admin_client: Client,
    admin_user: User,
    sent: Sent,
    django_capture_on_commit_callbacks: Any,
) -> None:
    _scan()
    with django_capture_on_commit_callbacks(execute=True):
        operation = _apply(_choice(blank[:2], tmp_path), admin_user, f"wipe {_names(blank[:2])}")
    disk_plan_apply_task.run(operation.pk, **sent[0][2])
    operation.refresh_from_db()
    try:
        assert operation.state == "succeeded", f"{operation.message}\n{operation.log}"
        latest = planning.disk_scan_latest()
        assert latest is not None
        assert latest.read_at > operation.started
        rows = {row.disk.path: row for row in planning.disk_survey(latest).rows}
        assert rows[blank[0]].contents == [f"btrfs filesystem at {tmp_path / 'mnt'}"]
        assert rows[blank[0]].usable is False
        page = admin_client.get(reverse("storage:disks")).content.decode()
        assert f"btrfs filesystem at {tmp_path / 'mnt'}" in page
    finally:
        btrfs.umount(str(tmp_path / "mnt"))


def test_reading_the_disks_from_the_page_queues_it_and_the_page_polls_it(
    blank: list[str], admin_client: Client, sent: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("storage:disks-scan"), {"devices": "/dev/sda; rm -rf /"})  # ignored
    assert (response.status_code, response["Location"]) == (302, reverse("storage:disks"))
    operation = Operation.objects.get()
    assert operation.kind == planning.SCAN_KIND
    page = admin_client.get(reverse("storage:disks")).content.decode()
    assert "The server&#x27;s worker is reading the disks" in page
    assert "Reading the disks</h2>" in page
    assert reverse("operation-status", args=[operation.pk]) in page
    assert 'hx-trigger="operation-finished from:body"' in page  # the page reloads when it ends
    assert 'disabled title="The worker is reading the disks"' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("storage:disks-scan"), follow=True)
    assert "The disks are being read already" in response.content.decode()
    assert Operation.objects.count() == 1
    disk_scan_task.run(operation.pk)
    page = admin_client.get(reverse("storage:disks")).content.decode()
    assert "Reading the disks</h2>" not in page
    assert 'hx-trigger="operation-finished from:body"' not in page
    assert f'id="disk-{blank[0].removeprefix("/dev/")}"' in page


@pytest.mark.django_db(transaction=True)  # real commits: the task is sent (and refused) inside the request
def test_the_page_says_so_when_the_job_queue_does_not_take_the_reading(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_: Any, **__: Any) -> None:
        raise ConnectionError("redis is away")

    monkeypatch.setattr(current_app, "send_task", down)
    response = admin_client.post(reverse("storage:disks-scan"), follow=True)
    page = response.content.decode()
    assert "The job queue is not answering" in page
    assert "Last reading of the disks</h2>" in page
    assert Operation.objects.get().state == "failed"
    assert not DiskScan.objects.exists()


def test_members_may_not_read_the_disks(alice_client: Client, sent: Sent) -> None:
    assert alice_client.post(reverse("storage:disks-scan")).status_code == 403
    assert not Operation.objects.exists()
    assert sent == []


def test_reading_the_disks_takes_a_post(admin_client: Client, sent: Sent) -> None:
    assert admin_client.get(reverse("storage:disks-scan")).status_code == 405
    assert not Operation.objects.exists()
