"""storage.remotes: RCLONE_REMOTES parsed into rclone remotes with errors naming the setting,
the system check that reports the same at startup, and rclone.conf written for the worker."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from pytest_django.fixtures import Settings

from storage import checks, remotes
from storage.remotes import RemotesError


def configure(settings: Settings, value: Any) -> None:
    settings.RCLONE_REMOTES_JSON = value if isinstance(value, str) else json.dumps(value)


def test_a_list_of_remotes_becomes_remote_configs(settings: Settings) -> None:
    configure(
        settings,
        [
            {"name": "customer", "type": "local", "options": {"one_file_system": "true"}},
            {"name": "gcs", "type": "gcs", "options": {"project_number": "42"}, "secret_file": "/etc/portal/gcs.json"},
            {
                "name": "gdrive",
                "type": "drive",
                "options": {"scope": "drive"},
                "secret_file": "/etc/portal/gd.json",
            },
        ],
    )
    found = remotes.remotes()
    assert [(r.name, r.type, dict(r.options), r.secret_file) for r in found] == [
        ("customer", "local", {"one_file_system": "true"}, None),
        ("gcs", "gcs", {"project_number": "42"}, "/etc/portal/gcs.json"),
        ("gdrive", "drive", {"scope": "drive"}, "/etc/portal/gd.json"),
    ]
    assert remotes.remote_names() == ["customer", "gcs", "gdrive"]
    assert remotes.remote_problems() == []


def test_no_setting_means_no_remotes(settings: Settings) -> None:
    configure(settings, "[]")
    assert remotes.remote_names() == []


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("[{", "RCLONE_REMOTES is not valid JSON"),
        ({"name": "x"}, "RCLONE_REMOTES must be a JSON list"),
        (["gdrive"], "RCLONE_REMOTES[0] must be an object"),
        ([{"name": "gdrive", "type": "drive", "token": "abc"}], "unknown key(s) token"),
        ([{"type": "drive"}], "needs a name and a type"),
        ([{"name": "Bad Name", "type": "local"}], "is not a remote name"),
        ([{"name": "s3", "type": "s3"}], "type 's3' is not supported"),
        ([{"name": "gdrive", "type": "drive", "options": {"token": "t"}}], "credentials belong in the secret file"),
        ([{"name": "gdrive", "type": "drive", "options": {"scope": 1}}], "options must be an object of text values"),
        ([{"name": "gdrive", "type": "drive", "secret_file": "gdrive.json"}], "secret_file must be an absolute path"),
        ([{"name": "a", "type": "local"}, {"name": "a", "type": "local"}], "names the remote(s) a more than once"),
    ],
)
def test_a_bad_setting_is_refused_naming_rclone_remotes(settings: Settings, value: Any, words: str) -> None:
    configure(settings, value)
    with pytest.raises(RemotesError) as caught:
        remotes.remotes()
    assert words in str(caught.value)
    assert "RCLONE_REMOTES" in str(caught.value)
    [problem] = checks.rclone_remotes_check()
    assert problem.id == "storage.E001"
    assert words in problem.msg


def test_the_system_check_stops_manage_py_on_a_bad_setting(settings: Settings) -> None:
    configure(settings, [{"name": "s3", "type": "s3"}])
    with pytest.raises(SystemCheckError, match=r"storage\.E001"):
        call_command("check")


def test_the_system_check_is_quiet_when_the_setting_is_fine(settings: Settings) -> None:
    configure(settings, [{"name": "customer", "type": "local"}])
    assert checks.rclone_remotes_check() == []


def test_rclone_config_is_written_privately_with_the_secrets(settings: Settings, tmp_path: Path) -> None:
    secret = tmp_path / "gdrive.json"
    secret.write_text(json.dumps({"client_secret": "s3cr3t", "token": {"access_token": "a", "refresh_token": "r"}}))
    configure(
        settings,
        [
            {"name": "customer", "type": "local"},
            {"name": "gdrive", "type": "drive", "options": {"client_id": "id"}, "secret_file": str(secret)},
        ],
    )
    settings.RCLONE_CONFIG_DIR = str(tmp_path / "var" / "rclone")
    path = remotes.rclone_config()
    assert path == f"{settings.RCLONE_CONFIG_DIR}/rclone.conf"
    assert stat.S_IMODE(os.stat(settings.RCLONE_CONFIG_DIR).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = Path(path).read_text()
    assert "[customer]\ntype = local\n" in text
    assert "[gdrive]\ntype = drive\nclient_id = id\nclient_secret = s3cr3t\n" in text
    assert 'token = {"access_token":"a","refresh_token":"r"}' in text


def test_an_existing_config_folder_is_made_private(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "rclone"
    folder.mkdir(mode=0o755)
    configure(settings, [{"name": "customer", "type": "local"}])
    settings.RCLONE_CONFIG_DIR = str(folder)
    remotes.rclone_config()
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700


def test_an_unreadable_secret_file_says_which_remote_and_file(settings: Settings, tmp_path: Path) -> None:
    configure(settings, [{"name": "gdrive", "type": "drive", "secret_file": str(tmp_path / "missing.json")}])
    settings.RCLONE_CONFIG_DIR = str(tmp_path / "rclone")
    with pytest.raises(
        RemotesError, match=r"RCLONE_REMOTES: Remote gdrive: cannot read the secret file .*missing\.json"
    ):
        remotes.rclone_config()
