"""hostops.rclone against the real rclone (1.60) and its local backend, plus the parsers on
lines recorded from those runs."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from hostops import rclone
from hostops.errors import HostOpsError, HostOpsTransient, NotFound
from hostops.rclone import Progress, RemoteConfig

pytestmark = pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed")

MB = 1_000_000


def fill(folder: Path, files: Mapping[str, bytes]) -> Path:
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return folder


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return fill(tmp_path / "source", {"a.txt": b"alpha\n", "sub/b.bin": os.urandom(50_000)})


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return fill(tmp_path / "dest", {"extra.txt": b"only here\n", "a.txt": b"old\n"})


# --- sync and copy on plain folders ---------------------------------------------------------


def test_copy_brings_the_files_and_leaves_extras_in_the_destination(source: Path, dest: Path) -> None:
    result = rclone.copy(str(source), str(dest), timeout=60)
    assert result.ok, result.error_message
    assert (result.exit_code, result.transfers, result.errors, result.error_message) == (0, 2, 0, "")
    assert result.bytes == 6 + 50_000
    assert tree(dest) == {**tree(source), "extra.txt": b"only here\n"}


def test_sync_makes_the_destination_the_same_and_deletes_its_extras(source: Path, dest: Path) -> None:
    result = rclone.sync(str(source), str(dest), timeout=60)
    assert result.ok, result.error_message
    assert tree(dest) == tree(source)


def test_a_dry_run_changes_nothing(source: Path, dest: Path) -> None:
    before = tree(dest)
    assert rclone.sync(str(source), str(dest), dry_run=True, timeout=60).ok
    assert tree(dest) == before


def test_excluded_files_stay_behind(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    assert rclone.copy(str(source), str(target), excludes=["*.bin"], timeout=60).ok
    assert tree(target) == {"a.txt": b"alpha\n"}


def test_a_remote_written_by_write_config_is_used(source: Path, tmp_path: Path) -> None:
    config = rclone.write_config([RemoteConfig("disk", "local", {"one_file_system": "true"})], tmp_path)
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert Path(config).read_text() == "[disk]\ntype = local\none_file_system = true\n"
    result = rclone.copy(f"disk:{source}", f"disk:{tmp_path}/via-remote", config=config, timeout=60)
    assert result.ok, result.error_message
    assert tree(tmp_path / "via-remote") == tree(source)


def test_a_remote_missing_from_the_config_is_a_usage_error(source: Path, tmp_path: Path) -> None:
    config = rclone.write_config([RemoteConfig("disk", "local")], tmp_path)
    result = rclone.copy(str(source), "other:x", config=config, timeout=60)
    assert (result.ok, result.exit_code) == (False, 1)
    assert "syntax or usage error" in result.error_message
    assert "didn't find section in config file" in result.error_message


# --- progress and bandwidth -------------------------------------------------------------------


def test_progress_moves_and_the_bandwidth_limit_slows_the_transfer(tmp_path: Path) -> None:
    big = fill(tmp_path / "big", {"data.bin": os.urandom(3 * MB)})
    seen: list[Progress] = []
    started = time.monotonic()
    limited = rclone.copy(
        str(big), str(tmp_path / "slow"), bwlimit="1M", stats_interval=0.2, on_progress=seen.append, timeout=60
    )
    limited_s = time.monotonic() - started
    assert limited.ok, limited.error_message
    started = time.monotonic()
    assert rclone.copy(str(big), str(tmp_path / "fast"), timeout=60).ok
    unlimited_s = time.monotonic() - started

    # 3 MB at 1 MiB/s: rclone's limiter lets the first ~0.5 MiB through at once, then paces.
    assert limited_s >= 2.3, limited_s
    assert unlimited_s < limited_s / 3, (unlimited_s, limited_s)
    moving = [p.bytes for p in seen]
    assert len(set(moving)) >= 5, moving
    assert moving == sorted(moving)
    assert seen[-1].bytes == seen[-1].total_bytes == 3 * MB
    assert seen[-1].percent == 100.0
    assert any(0 < (p.percent or 0) < 100 and p.total_transfers == 1 for p in seen)
    assert 0.8 * 1024**2 < max(p.speed_bps for p in seen) < 1.3 * 1024**2  # bytes/s, binary M


def test_the_bandwidth_limit_reaches_argv_joined_to_its_flag() -> None:
    argv = rclone.transfer_argv("copy", "/srv/in", "gdrive:backups/in", bwlimit="Mon-08:00,512K 18:00,off")
    assert argv[:4] == ["rclone", "copy", "/srv/in", "gdrive:backups/in"]
    assert "--bwlimit=Mon-08:00,512K 18:00,off" in argv
    assert {"--use-json-log", "-v", "--stats=1s", "--stats-log-level=NOTICE"} <= set(argv)
    assert not any(arg.startswith("--bwlimit") for arg in rclone.transfer_argv("sync", "/a", "/b"))


@pytest.mark.parametrize(("mbps", "expected"), [(100, "12207K"), (8, "976K"), (1000, "122070K"), (0.5, "61K")])
def test_bwlimit_from_mbps_converts_megabits_to_kibibytes_per_second_rounded_down(mbps: float, expected: str) -> None:
    assert rclone.bwlimit_from_mbps(mbps) == expected
    assert int(expected[:-1]) * 1024 <= mbps * 1_000_000 / 8


@pytest.mark.parametrize("mbps", [0, -5, float("nan"), float("inf"), 0.001])
def test_bwlimit_from_mbps_refuses_what_is_no_bandwidth(mbps: float) -> None:
    with pytest.raises(HostOpsError):
        rclone.bwlimit_from_mbps(mbps)


# --- failures ------------------------------------------------------------------------------


def test_a_missing_source_folder_fails_with_rclones_words_and_exit_3(tmp_path: Path) -> None:
    result = rclone.copy(str(tmp_path / "missing"), str(tmp_path / "out"), retries=1, timeout=60)
    assert (result.ok, result.exit_code, result.errors, result.retryable) == (False, 3, 1, False)
    assert result.error_message.startswith(
        "rclone copy failed (exit 3: a source or destination directory was not found)"
    )
    assert f"{tmp_path}/missing: error reading source root directory: directory not found" in result.error_message
    with pytest.raises(HostOpsError) as excinfo:
        result.raise_for_status()
    assert not isinstance(excinfo.value, HostOpsTransient)
    assert str(excinfo.value) == result.error_message


def test_each_error_line_reaches_on_error_as_it_comes(tmp_path: Path) -> None:
    errors: list[str] = []
    result = rclone.copy(
        str(tmp_path / "missing"), str(tmp_path / "out"), retries=2, on_error=errors.append, timeout=60
    )
    assert not result.ok
    assert len(errors) >= 2  # one per attempt at least, in the order rclone wrote them
    assert errors[0].endswith(f"{tmp_path}/missing: error reading source root directory: directory not found")


def test_exit_5_is_retryable_and_raises_transient() -> None:
    result = rclone.TransferResult(False, 5, 0, 0, 1, 1.0, rclone.failure_message("copy", 5, ["boom"]))
    assert result.retryable
    with pytest.raises(HostOpsTransient, match=r"exit 5: a temporary error \(retrying later may help\)\): boom"):
        result.raise_for_status()


@pytest.mark.parametrize("code", range(11))
def test_every_documented_exit_status_has_words(code: int) -> None:
    assert rclone.EXIT_MEANINGS[code]
    assert f"exit {code}: {rclone.EXIT_MEANINGS[code]}" in rclone.failure_message("sync", code, [])


def test_a_timeout_kills_rclone(tmp_path: Path) -> None:
    big = fill(tmp_path / "big", {"data.bin": os.urandom(2 * MB)})
    started = time.monotonic()
    with pytest.raises(HostOpsTransient, match="ran past 1s"):
        rclone.copy(str(big), str(tmp_path / "out"), bwlimit="100K", timeout=1)
    assert time.monotonic() - started < 6


# --- secrets -------------------------------------------------------------------------------

CLIENT_SECRET = "GOCSPX-h4-client-secret-Zq81"
ACCESS_TOKEN = "ya29.h4-access-token-Pm02"
REFRESH_TOKEN = "1//h4-refresh-token-Xv77"
SECRETS = (CLIENT_SECRET, ACCESS_TOKEN, REFRESH_TOKEN)


def make_drive_config(tmp_path: Path) -> str:
    secret_file = tmp_path / "drive.json"
    token = {
        "access_token": ACCESS_TOKEN,
        "token_type": "Bearer",
        "refresh_token": REFRESH_TOKEN,
        "expiry": "2099-01-01T00:00:00Z",  # unexpired: rclone uses it at once
    }
    secret_file.write_text(json.dumps({"client_secret": CLIENT_SECRET, "token": token}))
    options = {"client_id": "h4.apps.googleusercontent.com", "scope": "drive", "root_folder_id": "1h4Folder"}
    config_dir = tmp_path / "conf"
    config_dir.mkdir()
    return rclone.write_config([RemoteConfig("gdrive", "drive", options, str(secret_file))], config_dir)


@pytest.fixture
def drive_config(tmp_path: Path) -> str:
    return make_drive_config(tmp_path)


def test_drive_credentials_go_from_the_secret_file_into_a_private_config(drive_config: str) -> None:
    assert stat.S_IMODE(os.stat(drive_config).st_mode) == 0o600
    lines = Path(drive_config).read_text().splitlines()
    assert lines[:5] == [
        "[gdrive]",
        "type = drive",
        "client_id = h4.apps.googleusercontent.com",
        "scope = drive",
        "root_folder_id = 1h4Folder",
    ]
    assert lines[5] == f"client_secret = {CLIENT_SECRET}"
    assert json.loads(lines[6].removeprefix("token = "))["refresh_token"] == REFRESH_TOKEN
    assert [p.name for p in Path(drive_config).parent.iterdir()] == ["rclone.conf"]


def test_no_secret_reaches_argv_env_output_result_or_logs(
    tmp_path: Path,
    source: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A real run against Drive (offline here, so it fails once it has sent the access token):
    everything rclone was given and everything it or this module said is searched for the secrets."""
    calls: list[tuple[list[str], Mapping[str, str] | None]] = []
    lines: list[str] = []
    real = rclone.run_streaming

    def recording(
        argv: list[str], on_line: Callable[[str, str], None], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> int:
        calls.append((list(argv), env))

        def keep(stream: str, line: str) -> None:
            lines.append(line)
            on_line(stream, line)

        return real(argv, keep, timeout=timeout, env=env)

    monkeypatch.setattr(rclone, "run_streaming", recording)
    caplog.set_level(logging.DEBUG)
    drive_config = make_drive_config(tmp_path)  # here, not in a fixture, so caplog and capfd see it
    result = rclone.copy(
        str(source), "gdrive:backups", config=drive_config, retries=1, low_level_retries=1, timeout=120
    )

    assert not result.ok
    assert "googleapis.com" in result.error_message  # it sent the token (and failed to reach Google)
    assert calls == [(calls[0][0], {"RCLONE_CONFIG": drive_config})]
    everything = [*calls[0][0], repr(result), *lines, caplog.text, *capfd.readouterr()]
    for secret in SECRETS:
        assert not [text for text in everything if secret in text], secret
    assert CLIENT_SECRET in Path(drive_config).read_text()  # the search would have found it


def test_a_broken_secret_file_is_reported_without_its_contents(tmp_path: Path) -> None:
    secret_file = tmp_path / "broken.json"
    secret_file.write_text(f'{{"client_secret": "{CLIENT_SECRET}", ')
    with pytest.raises(HostOpsError, match="is not a JSON object") as excinfo:
        rclone.write_config([RemoteConfig("gdrive", "drive", {}, str(secret_file))], tmp_path)
    assert CLIENT_SECRET not in str(excinfo.value)
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__suppress_context__  # the JSONDecodeError, which holds the text, is dropped
    assert not (tmp_path / "rclone.conf").exists()


def test_a_missing_secret_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(HostOpsError, match=r"cannot read the secret file .*/nope.json \(No such file or directory\)"):
        rclone.write_config([RemoteConfig("gdrive", "drive", {}, str(tmp_path / "nope.json"))], tmp_path)


@pytest.mark.parametrize(
    ("remote", "message"),
    [
        (RemoteConfig("gdrive", "drive", {"client_secret": CLIENT_SECRET}), "credentials belong in the secret file"),
        (RemoteConfig("gdrive", "drive", {"scope": "drive\n[evil]"}), "must be one line"),
        (RemoteConfig("gdrive", "ftp"), "type 'ftp' is not supported"),
        (RemoteConfig("Gdrive", "drive"), "is not a remote name"),
        (RemoteConfig("disk", "local", {"type": "drive"}), "not accepted here"),
    ],
)
def test_bad_remotes_are_refused_before_a_config_is_written(remote: RemoteConfig, message: str, tmp_path: Path) -> None:
    with pytest.raises(HostOpsError, match=message) as excinfo:
        rclone.write_config([remote], tmp_path)
    assert CLIENT_SECRET not in str(excinfo.value)
    assert list(tmp_path.iterdir()) == []


def test_a_secret_file_key_the_backend_does_not_take_is_refused(tmp_path: Path) -> None:
    secret_file = tmp_path / "s.json"
    secret_file.write_text(json.dumps({"client_secret": CLIENT_SECRET, "root_folder_id": "x"}))
    with pytest.raises(HostOpsError, match=r"has key\(s\) root_folder_id") as excinfo:
        rclone.write_config([RemoteConfig("gdrive", "drive", {}, str(secret_file))], tmp_path)
    assert CLIENT_SECRET not in str(excinfo.value)


def test_a_gcs_remote_takes_its_service_account_from_the_secret_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "gcs.json"
    account = {"type": "service_account", "project_id": "team", "private_key": "-----BEGIN PRIVATE KEY-----\\nx"}
    secret_file.write_text(json.dumps({"service_account_credentials": account}))
    remote = RemoteConfig("gcs", "gcs", {"project_number": "123", "bucket_policy_only": "true"}, str(secret_file))
    config = rclone.write_config([remote], tmp_path)
    assert Path(config).read_text() == (
        "[gcs]\ntype = gcs\nproject_number = 123\nbucket_policy_only = true\n"
        f"service_account_credentials = {json.dumps(account, separators=(',', ':'))}\n"
    )
    with pytest.raises(HostOpsError, match="credentials belong in the secret file"):
        RemoteConfig("gcs", "gcs", {"service_account_credentials": "{}"}).section()


def test_two_remotes_of_one_name_are_refused(tmp_path: Path) -> None:
    with pytest.raises(HostOpsError, match="unique"):
        rclone.write_config([RemoteConfig("disk", "local"), RemoteConfig("disk", "local")], tmp_path)


# --- refusals before anything runs -------------------------------------------------------------


@pytest.fixture
def nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("rclone was started")

    monkeypatch.setattr(rclone, "run_streaming", refuse)
    monkeypatch.setattr(rclone, "run", refuse)


@pytest.mark.parametrize(
    "location",
    [
        "",
        "-rf",
        "--config=/etc/shadow",
        "relative/path",
        "/srv/../etc",
        "gdrive:a/../../b",
        "/srv/in\x00x",
        "/srv/in\nx",
        "gdrive:x\ry",
        "Gdrive:x",
        ":local:/etc",
        "gdrive,token=x:/p",
        "a" * 33 + ":x",
    ],
)
def test_malformed_locations_are_refused(location: str, nothing_runs: None) -> None:
    with pytest.raises(HostOpsError):
        rclone.copy(location, "/srv/out", timeout=5)
    with pytest.raises(HostOpsError):
        rclone.sync("/srv/in", location, timeout=5)
    with pytest.raises(HostOpsError):
        rclone.check(location, "/srv/out")


@pytest.mark.parametrize(
    "location", ["/srv/in", "/", "gdrive:", "gdrive:backups/2026-12", "g_d-1:/abs", "/srv/a:b", "/srv/..x"]
)
def test_wellformed_locations_pass(location: str) -> None:
    assert rclone.validate_location(location) == location


@pytest.mark.parametrize(
    "value", ["10M", "12.5M", "off", "512K", "1G", "10M:off", "Mon-08:00,512K 18:00,off", "08:00,1M;23:00,off", "100"]
)
def test_bandwidth_limits_rclone_accepts_pass(value: str) -> None:
    assert rclone.validate_bwlimit(value) == value


@pytest.mark.parametrize(
    "value", ["", "fast", "-1M", "10 M", "10M --config=x", "10Mbit", "25:00,1M", "Mon-8:00,1M", "1M\n", "10M:"]
)
def test_malformed_bandwidth_limits_are_refused(value: str, nothing_runs: None) -> None:
    with pytest.raises(HostOpsError, match="not an rclone bandwidth limit"):
        rclone.copy("/srv/in", "/srv/out", bwlimit=value, timeout=5)


@pytest.mark.parametrize("excludes", [["ok", "bad\nline"], [""], "*.tmp"])
def test_malformed_excludes_are_refused(excludes: list[str], nothing_runs: None) -> None:
    with pytest.raises(HostOpsError):
        rclone.sync("/srv/in", "/srv/out", excludes=excludes, timeout=5)


def test_an_exclude_that_looks_like_an_option_stays_a_value() -> None:
    assert "--exclude=--delete-before" in rclone.transfer_argv("sync", "/a", "/b", excludes=["--delete-before"])


# --- check and lsjson ------------------------------------------------------------------------


def test_check_counts_what_differs_one_way(source: Path, dest: Path) -> None:
    fill(dest, {"sub/b.bin": (source / "sub/b.bin").read_bytes()})
    report = rclone.check(str(source), str(dest))
    assert (report.matching, report.differing, report.missing_on_dest, report.errors) == (1, ("a.txt",), (), ())
    assert not report.ok
    (dest / "sub/b.bin").unlink()
    report = rclone.check(str(source), str(dest))
    assert report.missing_on_dest == ("sub/b.bin",)


def test_check_after_a_sync_finds_nothing(source: Path, dest: Path) -> None:
    assert rclone.sync(str(source), str(dest), timeout=60).ok
    report = rclone.check(str(source), str(dest), download=True)
    assert report.ok
    assert report.matching == 2


def test_check_of_a_missing_folder_raises_not_found(source: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"exit 3: .*missing: error reading source root directory: directory not found"):
        rclone.check(str(tmp_path / "missing"), str(source))


def test_lsjson_lists_files_and_folders(source: Path) -> None:
    entries = rclone.lsjson(str(source), recursive=True)
    assert [(e.path, e.size, e.is_dir) for e in entries] == [
        ("a.txt", 6, False),
        ("sub", -1, True),
        ("sub/b.bin", 50_000, False),
    ]
    assert all(e.mod_time.endswith("Z") for e in entries)
    with pytest.raises(NotFound):
        rclone.lsjson(str(source / "nope"))


def test_about_gives_the_space_of_the_filesystem(source: Path) -> None:
    usage = rclone.about(str(source))
    statvfs = os.statvfs(source)
    assert usage.total == statvfs.f_blocks * statvfs.f_frsize
    assert usage.free is not None
    assert usage.used is not None
    assert 0 < usage.free <= usage.total
    assert usage.trashed is None
    with pytest.raises(NotFound, match=r"exit 3: .*Failed to about: about call failed: directory not found"):
        rclone.about(str(source / "nope"))


# --- parsers, on lines recorded from rclone 1.60 -------------------------------------------------

# rclone copy /tmp/rcx/src /tmp/rcx/dst3 --use-json-log -v --stats=0.5s --stats-log-level=NOTICE --bwlimit=1M
# (stderr; 3 files, one of 3 MB), exit 0
COPY_RUN = (
    '{"level":"info","msg":"Starting bandwidth limiter at 1Mi Byte/s","source":"accounting/token_buck'
    'et.go:108","time":"2026-12-02T07:04:32.644302+00:00"}',
    '{"level":"info","msg":"Copied (new)","object":"b.txt","objectType":"*local.Object","source":"ope'
    'rations/operations.go:566","time":"2026-12-02T07:04:32.648161+00:00"}',
    '{"level":"info","msg":"Copied (new)","object":"sub/c.txt","objectType":"*local.Object","source":'
    '"operations/operations.go:566","time":"2026-12-02T07:04:32.648291+00:00"}',
    '{"level":"warning","msg":"\\nTransferred:   \\t  540.007 KiB / 2.861 MiB, 18%, 0 B/s, ETA -\\nTrans'
    "ferred:            2 / 3, 67%\\nElapsed time:         0.5s\\nTransferring:\\n *                    "
    '                     a.bin: 18% /2.861Mi, 0/s, -\\n\\n","source":"accounting/stats.go:482","stats"'
    ':{"bytes":552967,"checks":0,"deletedDirs":0,"deletes":0,"elapsedTime":0.567443075,"errors":0,"et'
    'a":null,"fatalError":false,"renames":0,"retryError":false,"speed":0,"totalBytes":3000007,"totalC'
    'hecks":0,"totalTransfers":3,"transferTime":0,"transferring":[{"bytes":552960,"eta":null,"group":'
    '"global_stats","name":"a.bin","percentage":18,"size":3000000,"speed":1105569.5543515226,"speedAv'
    'g":0}],"transfers":2},"time":"2026-12-02T07:04:33.146833+00:00"}',
    '{"level":"warning","msg":"\\nTransferred:   \\t    1.027 MiB / 2.861 MiB, 36%, 0 B/s, ETA -\\nTrans'
    "ferred:            2 / 3, 67%\\nElapsed time:         1.0s\\nTransferring:\\n *                    "
    '                     a.bin: 35% /2.861Mi, 0/s, -\\n\\n","source":"accounting/stats.go:482","stats"'
    ':{"bytes":1077255,"checks":0,"deletedDirs":0,"deletes":0,"elapsedTime":1.066739735,"errors":0,"e'
    'ta":null,"fatalError":false,"renames":0,"retryError":false,"speed":0,"totalBytes":3000007,"total'
    'Checks":0,"totalTransfers":3,"transferTime":0,"transferring":[{"bytes":1077248,"eta":null,"group'
    '":"global_stats","name":"a.bin","percentage":35,"size":3000000,"speed":1077835.6899099234,"speed'
    'Avg":0}],"transfers":2},"time":"2026-12-02T07:04:33.646105+00:00"}',
    '{"level":"warning","msg":"\\nTransferred:   \\t    1.527 MiB / 2.861 MiB, 53%, 1.026 MiB/s, ETA 1s'
    "\\nTransferred:            2 / 3, 67%\\nElapsed time:         1.5s\\nTransferring:\\n *             "
    '                            a.bin: 53% /2.861Mi, 1.024Mi/s, 1s\\n\\n","source":"accounting/stats.g'
    'o:482","stats":{"bytes":1601543,"checks":0,"deletedDirs":0,"deletes":0,"elapsedTime":1.566548283'
    ',"errors":0,"eta":1,"fatalError":false,"renames":0,"retryError":false,"speed":1076338.7203817102'
    ',"totalBytes":3000007,"totalChecks":0,"totalTransfers":3,"transferTime":0,"transferring":[{"byte'
    's":1601536,"eta":1,"group":"global_stats","name":"a.bin","percentage":53,"size":3000000,"speed":'
    '1068213.9768603614,"speedAvg":1074142.1019999357}],"transfers":2},"time":"2026-12-02T07:04:34.14'
    '5964+00:00"}',
    '{"level":"warning","msg":"\\nTransferred:   \\t    2.027 MiB / 2.861 MiB, 71%, 1.026 MiB/s, ETA 0s'
    "\\nTransferred:            2 / 3, 67%\\nElapsed time:         2.0s\\nTransferring:\\n *             "
    '                            a.bin: 70% /2.861Mi, 1.024Mi/s, 0s\\n\\n","source":"accounting/stats.g'
    'o:482","stats":{"bytes":2125831,"checks":0,"deletedDirs":0,"deletes":0,"elapsedTime":2.066954373'
    ',"errors":0,"eta":0,"fatalError":false,"renames":0,"retryError":false,"speed":1076338.7203817102'
    ',"totalBytes":3000007,"totalChecks":0,"totalTransfers":3,"transferTime":0,"transferring":[{"byte'
    's":2125824,"eta":0,"group":"global_stats","name":"a.bin","percentage":70,"size":3000000,"speed":'
    '1063088.0861897883,"speedAvg":1074142.1019999357}],"transfers":2},"time":"2026-12-02T07:04:34.64'
    '6324+00:00"}',
    '{"level":"warning","msg":"\\nTransferred:   \\t    2.527 MiB / 2.861 MiB, 88%, 1.013 MiB/s, ETA 0s'
    "\\nTransferred:            2 / 3, 67%\\nElapsed time:         2.5s\\nTransferring:\\n *             "
    '                            a.bin: 88% /2.861Mi, 1.012Mi/s, 0s\\n\\n","source":"accounting/stats.g'
    'o:482","stats":{"bytes":2650119,"checks":0,"deletedDirs":0,"deletes":0,"elapsedTime":2.567411639'
    ',"errors":0,"eta":0,"fatalError":false,"renames":0,"retryError":false,"speed":1062639.240576204,'
    '"totalBytes":3000007,"totalChecks":0,"totalTransfers":3,"transferTime":0,"transferring":[{"bytes'
    '":2650112,"eta":0,"group":"global_stats","name":"a.bin","percentage":88,"size":3000000,"speed":1'
    '059991.1415524287,"speedAvg":1061540.8369480055}],"transfers":2},"time":"2026-12-02T07:04:35.146'
    '765+00:00"}',
    '{"level":"info","msg":"Copied (new)","object":"a.bin","objectType":"*local.Object","source":"ope'
    'rations/operations.go:566","time":"2026-12-02T07:04:35.505942+00:00"}',
    '{"level":"warning","msg":"\\nTransferred:   \\t    2.861 MiB / 2.861 MiB, 100%, 1.013 MiB/s, ETA 0'
    's\\nTransferred:            3 / 3, 100%\\nElapsed time:         2.9s\\n\\n","source":"accounting/sta'
    'ts.go:482","stats":{"bytes":3000007,"checks":0,"deletedDirs":0,"deletes":0,"elapsedTime":2.92676'
    '791,"errors":0,"eta":0,"fatalError":false,"renames":0,"retryError":false,"speed":1062639.2405762'
    '04,"totalBytes":3000007,"totalChecks":0,"totalTransfers":3,"transferTime":0,"transfers":3},"time'
    '":"2026-12-02T07:04:35.506077+00:00"}',
)
# the same from /tmp/rcx/missing, exit 3
MISSING_RUN = (
    '{"level":"error","msg":"error reading source root directory: directory not found","object":"Loca'
    'l file system at /tmp/rcx/missing","objectType":"*local.Fs","source":"march/march.go:413","time"'
    ':"2026-12-02T07:04:35.576625+00:00"}',
    '{"level":"error","msg":"Attempt 1/3 failed with 1 errors and: directory not found","source":"cmd'
    '/cmd.go:283","time":"2026-12-02T07:04:35.576801+00:00"}',
    '{"level":"error","msg":"error reading source root directory: directory not found","object":"Loca'
    'l file system at /tmp/rcx/missing","objectType":"*local.Fs","source":"march/march.go:413","time"'
    ':"2026-12-02T07:04:35.576964+00:00"}',
    '{"level":"error","msg":"Attempt 2/3 failed with 1 errors and: directory not found","source":"cmd'
    '/cmd.go:283","time":"2026-12-02T07:04:35.577+00:00"}',
    '{"level":"error","msg":"error reading source root directory: directory not found","object":"Loca'
    'l file system at /tmp/rcx/missing","objectType":"*local.Fs","source":"march/march.go:413","time"'
    ':"2026-12-02T07:04:35.577056+00:00"}',
    '{"level":"error","msg":"Attempt 3/3 failed with 1 errors and: directory not found","source":"cmd'
    '/cmd.go:283","time":"2026-12-02T07:04:35.577084+00:00"}',
    '{"level":"warning","msg":"\\nTransferred:   \\t          0 B / 0 B, -, 0 B/s, ETA -\\nErrors:      '
    '           1 (retrying may help)\\nElapsed time:         0.0s\\n\\n","source":"accounting/stats.go:'
    '482","stats":{"bytes":0,"checks":0,"deletedDirs":0,"deletes":0,"elapsedTime":0.051221205,"errors'
    '":1,"eta":null,"fatalError":false,"lastError":"directory not found","renames":0,"retryError":tru'
    'e,"speed":0,"totalBytes":0,"totalChecks":0,"totalTransfers":0,"transferTime":0,"transfers":0},"t'
    'ime":"2026-12-02T07:04:35.577125+00:00"}',
    "2026/12/02 07:04:35 Failed to copy: directory not found",
)
USAGE_PLAIN = "Error: unknown flag: --bogus"
# rclone check … --one-way --combined=- (stdout)
COMBINED = "+ sub/c.txt\n* b.txt\n= a.bin\n"
# rclone about /tmp/rcx/src --json
ABOUT_LOCAL = '{\n\t"total": 270553174016,\n\t"used": 26948075520,\n\t"free": 81996218368\n}\n'
# rclone lsjson --recursive (two of its entries)
LSJSON = (
    '[\n{"Path":"a.bin","Name":"a.bin","Size":3000000,"MimeType":"application/octet-stream","ModTime":'
    '"2026-12-02T06:58:18.750571234Z","IsDir":false},\n{"Path":"sub","Name":"sub","Size":-1,"MimeType":"inode/directory",'
    '"ModTime":"2026-12-02T06:59:31.448368753Z","IsDir":true}\n]\n'
)


def test_a_running_stats_line_becomes_progress() -> None:
    line = rclone.parse_log_line(COPY_RUN[5])
    assert line is not None
    assert line.stats is not None
    assert line.level == "warning"  # rclone writes NOTICE as "warning" in its JSON log
    assert rclone.progress_from_stats(line.stats) == Progress(
        bytes=1601543,
        total_bytes=3000007,
        transfers=2,
        total_transfers=3,
        errors=0,
        speed_bps=1076338.7203817102,
        eta_s=1,
        percent=53.4,
    )


def test_a_stats_line_without_eta_or_totals_has_none_for_them() -> None:
    starting = rclone.parse_log_line(COPY_RUN[3])
    failed = rclone.parse_log_line(MISSING_RUN[6])
    assert starting is not None
    assert starting.stats is not None
    assert failed is not None
    assert failed.stats is not None
    assert rclone.progress_from_stats(starting.stats).eta_s is None
    assert rclone.progress_from_stats(starting.stats).speed_bps == 0.0
    progress = rclone.progress_from_stats(failed.stats)
    assert (progress.percent, progress.errors, progress.total_bytes, progress.eta_s) == (None, 1, 0, None)


def test_error_and_info_lines_are_parsed_without_stats() -> None:
    assert rclone.parse_log_line(MISSING_RUN[0]) == rclone.LogLine(
        "error", "error reading source root directory: directory not found", "Local file system at /tmp/rcx/missing"
    )
    assert rclone.parse_log_line(MISSING_RUN[5]) == rclone.LogLine(
        "error", "Attempt 3/3 failed with 1 errors and: directory not found"
    )
    assert rclone.parse_log_line(COPY_RUN[1]) == rclone.LogLine("info", "Copied (new)", "b.txt")
    assert rclone.parse_log_line(COPY_RUN[0]) == rclone.LogLine("info", "Starting bandwidth limiter at 1Mi Byte/s")


def test_a_recorded_copy_gives_rising_progress_and_its_totals() -> None:
    log = rclone.TransferLog("copy")
    seen = [progress for line in COPY_RUN if (progress := log.feed(line)) is not None]
    assert [p.bytes for p in seen] == [552967, 1077255, 1601543, 2125831, 2650119, 3000007]
    assert [p.percent for p in seen] == [18.4, 35.9, 53.4, 70.9, 88.3, 100.0]
    assert log.result(0, elapsed_s=2.91234) == rclone.TransferResult(True, 0, 3000007, 3, 0, 2.912, "")


def test_a_recorded_failure_gives_the_meaning_and_the_telling_error() -> None:
    log = rclone.TransferLog("copy")
    assert [log.feed(line) for line in MISSING_RUN][:6] == [None] * 6
    result = log.result(3, elapsed_s=0.05)
    assert (result.ok, result.exit_code, result.bytes, result.errors) == (False, 3, 0, 1)
    assert result.error_message == (
        "rclone copy failed (exit 3: a source or destination directory was not found): "
        "Local file system at /tmp/rcx/missing: error reading source root directory: directory not found"
    )


def test_rclones_plain_last_words_are_errors_and_other_text_is_text() -> None:
    assert rclone.parse_log_line(MISSING_RUN[7]) == rclone.LogLine("error", "Failed to copy: directory not found")
    assert rclone.parse_log_line(USAGE_PLAIN) == rclone.LogLine("error", "Error: unknown flag: --bogus")
    assert rclone.parse_log_line("  rclone copy source:path dest:path [flags]") == rclone.LogLine(
        "text", "rclone copy source:path dest:path [flags]"
    )
    assert rclone.parse_log_line('{"not": "a log line"}') == rclone.LogLine("text", '{"not": "a log line"}')
    assert rclone.parse_log_line("{broken") == rclone.LogLine("text", "{broken")
    assert rclone.parse_log_line("   ") is None


def test_the_message_prefers_the_error_that_names_its_cause() -> None:
    errors = [
        "Local file system at /tmp/rcx/missing: error reading source root directory: directory not found",
        "Attempt 3/3 failed with 1 errors and: directory not found",
        "Failed to copy: directory not found",
    ]
    assert rclone.failure_message("copy", 3, errors).endswith(f": {errors[0]}")
    assert rclone.failure_message("copy", 3, errors[1:]).endswith(": Failed to copy: directory not found")
    assert len(rclone.failure_message("copy", 2, ["x" * 2000])) < 600


def test_the_combined_check_report_is_counted() -> None:
    report = rclone.parse_combined(COMBINED + "! broken.bin\n- only-in-dest\n")
    assert (report.matching, report.differing, report.missing_on_dest, report.errors) == (
        1,
        ("b.txt",),
        ("sub/c.txt",),
        ("broken.bin",),
    )
    assert rclone.parse_combined("= a\n= b\n").ok


def test_about_output_is_parsed() -> None:
    assert rclone.parse_about(ABOUT_LOCAL) == rclone.Usage(270553174016, 26948075520, 81996218368)
    assert rclone.parse_about('{"total": 10, "used": 4, "trashed": 1, "other": 2, "free": 6}').trashed == 1


def test_lsjson_output_is_parsed() -> None:
    assert rclone.parse_lsjson(LSJSON) == [
        rclone.Entry("a.bin", 3000000, "2026-12-02T06:58:18.750571234Z", False),
        rclone.Entry("sub", -1, "2026-12-02T06:59:31.448368753Z", True),
    ]
