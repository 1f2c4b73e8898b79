"""The restic version check (backups/checks.py): a restic older than 0.16 is a warning of
manage.py's checks and of the worker's start. The old restic is a tiny stand-in script on the
PATH printing what restic 0.14 prints, and Debian 12's real 0.14 where it is installed."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from backups import checks
from hostops import restic

RESTIC_0_18 = "/usr/local/lib/portal-test/bin/restic"
DEBIAN_12_RESTIC = "/usr/bin/restic"
OLD_LINE = "restic 0.14.0 compiled with go1.19.8 on linux/amd64"


@pytest.fixture
def old_restic_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``restic`` first on the PATH, answering any command line as restic 0.14 does."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "restic"
    script.write_text(f"#!/bin/sh\necho '{OLD_LINE}'\n")
    script.chmod(0o755)
    monkeypatch.delenv(restic.BINARY_ENV, raising=False)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    return script


def test_an_old_restic_on_the_path_is_a_warning(old_restic_on_path: Path) -> None:
    assert restic.version() == "0.14.0"
    (warning,) = checks.restic_version_check()
    assert warning.id == "backups.W001"
    assert warning.msg.startswith(
        "restic 0.14.0 (restic) is older than 0.16: its forget lacks the oldest-snapshot rule"
    )
    assert "Debian 13's restic 0.18" in warning.hint


def test_manage_py_check_shows_the_warning(old_restic_on_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("check")
    assert "(backups.W001) restic 0.14.0" in capsys.readouterr().err


def test_the_worker_says_so_when_it_starts(old_restic_on_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="backups.checks"):
        checks._warn_at_worker_start(sender=None)
    assert "restic 0.14.0 (restic) is older than 0.16" in caplog.text


@pytest.mark.skipif(
    not os.access(DEBIAN_12_RESTIC, os.X_OK)
    or OLD_LINE.split(" compiled")[0]
    not in subprocess.run([DEBIAN_12_RESTIC, "version"], capture_output=True, text=True, check=False).stdout,
    reason="Debian 12's restic 0.14 is not installed here",
)
def test_debian_12s_own_restic_is_too_old(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(restic.BINARY_ENV, DEBIAN_12_RESTIC)
    (warning,) = checks.restic_version_check()
    assert warning.msg.startswith(f"restic 0.14.0 ({DEBIAN_12_RESTIC}) is older than 0.16")


@pytest.mark.skipif(not os.access(RESTIC_0_18, os.X_OK), reason=f"needs restic 0.18 at {RESTIC_0_18}")
def test_restic_0_18_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(restic.BINARY_ENV, RESTIC_0_18)
    assert checks.restic_version_check() == []


def test_a_missing_restic_matters_only_once_the_offsite_tier_is_set_up(
    monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path
) -> None:
    monkeypatch.setenv(restic.BINARY_ENV, str(tmp_path / "no-restic-here"))
    settings.BACKUP_RESTIC_REPOSITORY = ""
    assert checks.restic_version_check() == []
    settings.BACKUP_RESTIC_REPOSITORY = "/srv/backup/repo"
    (warning,) = checks.restic_version_check()
    assert warning.msg.startswith("restic cannot be run (")
    assert "command not found" in warning.msg


@pytest.mark.parametrize(
    ("text", "parts"),
    [("0.18.0", (0, 18, 0)), ("0.16", (0, 16, 0)), ("0.17.3-dev", (0, 17, 3)), ("1.0.0", (1, 0, 0)), ("x", ())],
)
def test_version_tuple(text: str, parts: tuple[int, ...]) -> None:
    assert restic.version_tuple(text) == parts
