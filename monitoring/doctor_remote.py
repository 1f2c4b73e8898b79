"""The doctor's checks of what lies outside this machine: the offsite repository opened with
the configured password, each rclone remote, the Slack webhook (asked without posting), and
Guacamole's key (a sign-in with no connections, signed with the portal's key)."""

from __future__ import annotations

import time

import requests
from django.conf import settings

from backups import offsite_repo
from hostops import rclone, restic
from hostops.errors import HostOpsError, RepositoryMissing, WrongPassword
from monitoring.doctor_checks import Check, Probe, Status
from portal import slack
from storage import remotes
from workspaces import desktop

# What a live webhook answers to an empty message (HTTP 400): it exists, and posted nothing.
_SLACK_ALIVE = ("invalid_payload", "no_text", "missing_text_or_fallback_or_attachments")

# --- offsite backups and rclone ---------------------------------------------------------------


def restic_probes() -> tuple[list[Check], list[Probe]]:
    """The offsite repository opened with the configured password; the repository's settings
    and the stored Drive token are read here (the caller's thread)."""
    name = "Offsite repository (restic)"
    if not settings.BACKUP_RESTIC_REPOSITORY.strip():
        return [Check("restic", name, Status.SKIP, "no offsite repository is set up (BACKUP_RESTIC_REPOSITORY)")], []
    try:
        repo = offsite_repo.repository()
    except (offsite_repo.OffsiteNotConfigured, HostOpsError) as exc:
        return [
            Check(
                "restic",
                name,
                Status.FAIL,
                str(exc),
                "Set BACKUP_RESTIC_REPOSITORY and BACKUP_RESTIC_PASSWORD_FILE as the message says.",
            )
        ], []
    hung = "restic did not answer: the remote is slow or unreachable (see the rclone check); retry later."
    return [], [Probe("restic", name, lambda: _restic(repo), timeout=120, hung_fix=hung)]


def _restic(repo: restic.Repository) -> list[Check]:
    name = "Offsite repository (restic)"
    try:
        repo_id = restic.repository_id(repo, timeout=110)
    except HostOpsError as exc:
        if isinstance(exc, WrongPassword):
            fix = f"Put the password the repository was created with in {repo.password_file} (one line, mode 0600)."
        elif isinstance(exc, RepositoryMissing):
            fix = "Create it on Backups → Offsite repository, or correct BACKUP_RESTIC_REPOSITORY."
        else:
            fix = "Check the network and the remote (the rclone check), then Check repository on Backups → Offsite."
        return [Check("restic", name, Status.FAIL, offsite_repo.explain(exc), fix)]
    return [
        Check("restic", name, Status.OK, f"{offsite_repo.describe()} opens with the password file (id {repo_id[:8]})")
    ]


def rclone_probes() -> tuple[list[Check], list[Probe]]:
    """Each remote of RCLONE_REMOTES listed at its top; rclone.conf is written here first,
    with the tokens pasted on the Backups page."""
    try:
        configured = remotes.remotes()
        if not configured:
            return [Check("rclone", "rclone remotes", Status.SKIP, "RCLONE_REMOTES names no remote")], []
        tokens = {remote.name: offsite_repo.stored_token(remote.name) for remote in configured}
        config = remotes.rclone_config({name: {"token": token} for name, token in tokens.items() if token is not None})
    except (remotes.RemotesError, offsite_repo.OffsiteNotConfigured) as exc:
        return [
            Check(
                "rclone",
                "rclone remotes",
                Status.FAIL,
                str(exc),
                "Correct RCLONE_REMOTES or the remote's secret_file as the message says.",
            )
        ], []
    return [], [_rclone_probe(remote.name, config) for remote in configured]


def _rclone_probe(name: str, config: str) -> Probe:
    hung = f"rclone did not list {name}: within the time: the remote is slow or unreachable from this machine."
    return Probe(f"rclone.{name}", f"rclone remote {name}", lambda: _rclone(name, config), timeout=60, hung_fix=hung)


def _rclone(name: str, config: str) -> list[Check]:
    try:
        entries = rclone.lsjson(f"{name}:", config=config, timeout=55)
    except HostOpsError as exc:
        fix = (
            f"Check the remote's credentials (its secret_file, or paste Drive's token again on the Backups page); "
            f"RCLONE_CONFIG={config} rclone lsd {name}: in the worker container shows rclone's own words."
        )
        return [Check(f"rclone.{name}", f"rclone remote {name}", Status.FAIL, str(exc)[:400], fix)]
    return [Check(f"rclone.{name}", f"rclone remote {name}", Status.OK, f"answers ({len(entries)} entries at its top)")]


# --- Slack and Guacamole ----------------------------------------------------------------------


def slack_probe() -> Probe | Check:
    name = "Slack webhook"
    if not settings.SLACK_WEBHOOK_URL:
        return Check(
            "slack", name, Status.SKIP, "SLACK_WEBHOOK_URL is not set: alerts go to the portal's notifications only"
        )
    return Probe(
        "slack",
        name,
        _slack,
        timeout=15,
        hung_fix="Slack did not answer: check the worker's outbound HTTPS (proxy, DNS).",
    )


def _slack() -> list[Check]:
    name = "Slack webhook"
    fix = "Make a new incoming webhook (api.slack.com/apps → Incoming Webhooks) and set SLACK_WEBHOOK_URL to it."
    try:
        status, body = slack.slack_webhook_probe(timeout=10)
    except slack.SlackError as exc:
        # The URL's path is the webhook's secret: portal.slack's message names only the host.
        return [
            Check(
                "slack",
                name,
                Status.FAIL,
                str(exc),
                "Check the worker's outbound HTTPS (proxy, DNS, firewall).",
            )
        ]
    if status == 400 and body in _SLACK_ALIVE:
        return [Check("slack", name, Status.OK, f"the webhook exists (it refused an empty message: {body})")]
    if status in (403, 404, 410) or body in ("no_service", "invalid_token", "channel_is_archived", "action_prohibited"):
        return [
            Check(
                "slack", name, Status.FAIL, f"the webhook is gone or revoked (HTTP {status}: {body or 'no body'})", fix
            )
        ]
    if 200 <= status < 300:
        return [
            Check(
                "slack",
                name,
                Status.WARN,
                f"HTTP {status} to an empty message: is SLACK_WEBHOOK_URL a Slack webhook?",
                fix,
            )
        ]
    return [
        Check(
            "slack",
            name,
            Status.FAIL,
            f"HTTP {status}: {body or 'no body'}",
            "Retry later (Slack's status page); if it stays, " + fix,
        )
    ]


def guacamole_probe() -> Probe | Check:
    name = "Guacamole key"
    if not settings.GUACAMOLE_JSON_SECRET_KEY:
        return Check(
            "guacamole",
            name,
            Status.SKIP,
            "GUACAMOLE_JSON_SECRET_KEY is not set: the Desktop link opens Guacamole's own login",
        )
    return Probe(
        "guacamole",
        name,
        _guacamole,
        timeout=15,
        hung_fix=f"Guacamole did not answer at {settings.GUACAMOLE_URL}: docker compose logs guacamole.",
    )


def _guacamole() -> list[Check]:
    """Sign in as a user with no connections, with a token sealed by the portal's key, and sign
    out again: Guacamole accepts it only when its JSON_SECRET_KEY is the same."""
    name, base = "Guacamole key", settings.GUACAMOLE_URL
    expires = int((time.time() + 60) * 1000)
    token = desktop.guacamole_token(
        settings.GUACAMOLE_JSON_SECRET_KEY, {"username": "portal-doctor", "expires": expires, "connections": {}}
    )
    try:
        response = requests.post(f"{base}/api/tokens", data={"data": token}, timeout=10)
    except requests.RequestException as exc:
        return [
            Check(
                "guacamole",
                name,
                Status.WARN,
                f"Guacamole does not answer at {base} from here ({type(exc).__name__}), so the key was not tried.",
                "Start Guacamole (docker compose up -d guacamole) or check GUACAMOLE_URL.",
            )
        ]
    if response.status_code == 200:
        auth = str(response.json().get("authToken", ""))
        if auth:
            requests.delete(f"{base}/api/tokens/{auth}", timeout=5)
        return [Check("guacamole", name, Status.OK, "Guacamole accepts the portal's signed sign-in")]
    if response.status_code in (401, 403):
        return [
            Check(
                "guacamole",
                name,
                Status.FAIL,
                "Guacamole refused the portal's signed sign-in: its JSON_SECRET_KEY is not GUACAMOLE_JSON_SECRET_KEY.",
                "Give Guacamole's JSON_SECRET_KEY and the portal's GUACAMOLE_JSON_SECRET_KEY the same 32 hex digits "
                "(openssl rand -hex 16), then restart both.",
            )
        ]
    return [
        Check(
            "guacamole",
            name,
            Status.FAIL,
            f"{base}/api/tokens answered HTTP {response.status_code}: is GUACAMOLE_URL Guacamole with auth-json?",
            "Set GUACAMOLE_URL to Guacamole's address and install the auth-json extension.",
        )
    ]
