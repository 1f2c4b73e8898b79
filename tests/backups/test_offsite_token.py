"""The Google Drive token an admin pastes on the Offsite repository page: kept encrypted, shown
again nowhere (the page, the audit rows, the log, the database holds only ciphertext), and
written by the worker into its rclone.conf (mode 0600) for the repository's Drive remote."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from backups import offsite_repo
from backups.models import BackupSecret
from portal.models import AuditEvent

# What `rclone authorize "drive"` prints (the values made up, the shape rclone's).
ACCESS = "ya29.a0AfB_byC-made-up-access-token-9f8e7d6c5b4a"
REFRESH = "1//0gmade-up-refresh-token-Zx81qPdK"
TOKEN = json.dumps(
    {"access_token": ACCESS, "token_type": "Bearer", "refresh_token": REFRESH, "expiry": "2026-12-02T19:04:11.12+01:00"}
)
SECRETS = (ACCESS, REFRESH)


@pytest.fixture
def drive(settings: Any, tmp_path: Path) -> str:
    """The repository on a Drive remote of RCLONE_REMOTES (a client_id, no secret file)."""
    settings.RCLONE_REMOTES_JSON = json.dumps(
        [{"name": "gdrive", "type": "drive", "options": {"client_id": "1234-abc.apps.googleusercontent.com"}}]
    )
    settings.BACKUP_RESTIC_REPOSITORY = "rclone:gdrive:portal-backups"
    settings.RCLONE_CONFIG_DIR = str(tmp_path / "rclone")
    password = tmp_path / "restic-password"
    password.write_text("a password\n")
    settings.BACKUP_RESTIC_PASSWORD_FILE = str(password)
    settings.BACKUP_RESTIC_CACHE_DIR = str(tmp_path / "cache")
    return "gdrive"


def _paste(client: Client, text: str) -> Any:
    return client.post(reverse("backups:offsite-token"), {"token": text})


def _page(client: Client) -> str:
    return client.get(reverse("backups:offsite")).content.decode()


def _all_rows_text() -> str:
    """Every row of the tables a token could end up in, as the database holds them."""
    with connection.cursor() as cursor:
        text = []
        for table in (BackupSecret._meta.db_table, AuditEvent._meta.db_table, "django_session"):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - table names from the models
            text.append(repr(cursor.fetchall()))
    return "\n".join(text)


def test_the_pasted_token_is_never_shown_logged_audited_or_stored_in_clear(
    admin_client: Client, drive: str, caplog: pytest.LogCaptureFixture
) -> None:
    page = _page(admin_client)
    assert 'id="token-form"' in page
    assert "Not set" in page
    caplog.set_level(logging.DEBUG)

    saved = _paste(admin_client, TOKEN)
    assert saved.status_code == 302
    after = admin_client.get(reverse("backups:offsite"))
    html = after.content.decode()
    assert "set on " in html.lower()
    assert "by ada" in html
    assert "is saved. It is kept encrypted and not shown again." in html
    for secret in SECRETS:
        assert secret not in saved.content.decode()
        assert secret not in html
        assert secret not in caplog.text
        assert secret not in _all_rows_text()
        for event in AuditEvent.objects.all():
            assert secret not in json.dumps(event.detail) + event.target_label + event.action
    (event,) = AuditEvent.objects.filter(action="backups.drive_token_set")
    assert event.detail == {"remote": "gdrive", "replaced": False}
    row = BackupSecret.objects.get()
    assert row.ciphertext.startswith("gAAAA")  # a Fernet token
    assert offsite_repo.stored_token("gdrive") == json.loads(TOKEN)


def test_the_worker_writes_the_pasted_token_into_its_rclone_conf(
    admin_client: Client, drive: str, settings: Any
) -> None:
    _paste(admin_client, TOKEN)
    repo = offsite_repo.repository()
    assert repo.rclone_config == os.path.join(settings.RCLONE_CONFIG_DIR, "rclone.conf")
    assert stat.S_IMODE(os.stat(repo.rclone_config).st_mode) == 0o600
    lines = Path(repo.rclone_config).read_text().splitlines()
    assert lines[:3] == ["[gdrive]", "type = drive", "client_id = 1234-abc.apps.googleusercontent.com"]
    (token_line,) = [line for line in lines if line.startswith("token = ")]
    assert json.loads(token_line.removeprefix("token = ")) == json.loads(TOKEN)
    assert repo.location == "rclone:gdrive:portal-backups"
    assert ACCESS not in " ".join(repo.options())


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "Paste the token: the JSON that `rclone authorize &quot;drive&quot;` printed."),
        ("   \n", "Paste the token"),
        (f"access_token={ACCESS}", "That is not JSON. Paste the whole object rclone printed"),
        (json.dumps([ACCESS, REFRESH]), "The token must be a JSON object, from { to }."),
        (json.dumps({"access_token": ACCESS}), "The token has no refresh_token; paste the whole object"),
        (json.dumps({"access_token": ACCESS, "refresh_token": {"x": REFRESH}}), "The token has no refresh_token"),
        ("{" + " " * 17_000 + "}", "That is longer than any token"),
    ],
)
def test_bad_pastes_are_refused_in_words_and_nothing_is_stored(
    admin_client: Client, drive: str, text: str, words: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = _paste(admin_client, text)
    assert response.status_code == 400
    html = response.content.decode()
    assert words in html
    for secret in SECRETS:
        assert secret not in html  # not even back in the textarea
        assert secret not in caplog.text
    assert not BackupSecret.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="backups.drive_token").exists()


def test_replace_and_remove(admin_client: Client, drive: str) -> None:
    _paste(admin_client, TOKEN)
    page = _page(admin_client)
    assert '<summary class="btn">Replace</summary>' in page
    assert "Remove</button>" in page
    newer = json.dumps({"access_token": "ya29.other", "refresh_token": "1//other", "token_type": "Bearer"})
    assert _paste(admin_client, newer).status_code == 302
    assert offsite_repo.stored_token("gdrive")["refresh_token"] == "1//other"
    assert AuditEvent.objects.get(action="backups.drive_token_set", detail__replaced=True)

    removed = admin_client.post(reverse("backups:offsite-token-remove"))
    assert removed.status_code == 302
    assert not BackupSecret.objects.exists()
    assert AuditEvent.objects.filter(action="backups.drive_token_cleared").count() == 1
    assert "Not set" in _page(admin_client)
    again = admin_client.post(reverse("backups:offsite-token-remove"))
    assert again.status_code == 400
    assert "There is no stored token to remove." in again.content.decode()


def test_a_new_secret_key_asks_for_the_token_again(admin_client: Client, drive: str, settings: Any) -> None:
    _paste(admin_client, TOKEN)
    settings.SECRET_KEY = "a-different-secret-key-after-a-rotation-0123456789"
    admin_client.force_login(AuditEvent.objects.get().actor)  # the session was signed with the old key
    page = _page(admin_client)
    assert "The stored token cannot be read any more (SECRET_KEY changed" in page
    assert "paste it again" in page
    assert 'id="token-form"' in page
    with pytest.raises(offsite_repo.OffsiteNotConfigured, match=r"cannot be read any more .* Paste it again"):
        offsite_repo.repository()
    assert _paste(admin_client, TOKEN).status_code == 302
    assert offsite_repo.stored_token("gdrive") == json.loads(TOKEN)


def test_no_token_form_for_a_repository_that_is_not_on_drive(
    admin_client: Client, drive: str, settings: Any, tmp_path: Path
) -> None:
    settings.BACKUP_RESTIC_REPOSITORY = str(tmp_path / "repo")
    assert 'id="drive-token"' not in _page(admin_client)
    refused = _paste(admin_client, TOKEN)
    assert refused.status_code == 400
    assert "The repository is not on a Google Drive remote; no token is kept for it." in refused.content.decode()
    assert not BackupSecret.objects.exists()


def test_a_member_cannot_paste_or_remove_a_token(alice_client: Client, drive: str) -> None:
    assert _paste(alice_client, TOKEN).status_code == 403
    assert alice_client.post(reverse("backups:offsite-token-remove")).status_code == 403
    assert not BackupSecret.objects.exists()
