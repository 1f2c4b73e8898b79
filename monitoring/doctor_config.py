"""The doctor's checks of the settings: what matters in production (DEBUG, SECRET_KEY,
ALLOWED_HOSTS, the domains, the gate's key, the Google client), and Django's own checks with
the deployment ones (`check --deploy`), which also carry the apps' checks (restic's version,
RCLONE_REMOTES)."""

from __future__ import annotations

from django.conf import settings
from django.core import checks as django_checks

from monitoring.doctor_checks import Check, Probe, Status

# Django's own deployment checks that the settings checks below already say in their words.
_DJANGO_DUPLICATES = frozenset({"security.W009", "security.W018", "security.W020"})

# --- settings ---------------------------------------------------------------------------------


def settings_checks() -> list[Check]:
    """What matters in production, from the settings alone (no thread: nothing can hang)."""
    return [_debug(), _secret_key(), _allowed_hosts(), _domain(), _gate_key(), _google()]


def _debug() -> Check:
    if settings.DEBUG:
        return Check(
            "config.debug",
            "DEBUG",
            Status.FAIL,
            "DEBUG is on: error pages show settings and code to anyone, static files are served unhashed.",
            "Set DEBUG=false in .env (DEBUG is for `make run` on a laptop) and restart the portal.",
        )
    return Check("config.debug", "DEBUG", Status.OK, "off")


def _secret_key() -> Check:
    key = settings.SECRET_KEY
    weak = len(key) < 50 or len(set(key)) < 5 or key.startswith(("django-insecure", "change-me"))
    if weak:
        return Check(
            "config.secret_key",
            "SECRET_KEY",
            Status.FAIL,
            f"SECRET_KEY is {'a placeholder' if key.startswith(('django-insecure', 'change-me')) else 'too short'} "
            f"({len(key)} characters): sessions, the gate's cookies and stored tokens are signed with it.",
            "Put a new random key in .env (python3 -c 'import secrets; print(secrets.token_urlsafe(50))' for "
            "SECRET_KEY or the file SECRET_KEY_FILE names) and restart; everyone signs in again.",
        )
    return Check("config.secret_key", "SECRET_KEY", Status.OK, f"{len(key)} characters")


def _allowed_hosts() -> Check:
    if "*" in settings.ALLOWED_HOSTS:
        return Check(
            "config.allowed_hosts",
            "ALLOWED_HOSTS",
            Status.FAIL,
            "ALLOWED_HOSTS holds '*': any Host header is believed, so password-reset and sign-in links can be forged.",
            "Remove '*' from EXTRA_ALLOWED_HOSTS; the portal allows PORTAL_HOST by itself.",
        )
    return Check("config.allowed_hosts", "ALLOWED_HOSTS", Status.OK, ", ".join(settings.ALLOWED_HOSTS))


def _placeholder_domain(domain: str) -> bool:
    return domain in ("localhost", "example.com") or domain.endswith((".example", ".invalid", ".localhost"))


def _domain() -> Check:
    domain = settings.PORTAL_DOMAIN
    if _placeholder_domain(domain):
        return Check(
            "config.portal_domain",
            "PORTAL_DOMAIN",
            Status.FAIL,
            f"PORTAL_DOMAIN is {domain!r}: members' code-server, Jupyter and desktop addresses live under it.",
            "Set PORTAL_DOMAIN to the team's domain (the one whose *.<domain> DNS points at this server).",
        )
    if _placeholder_domain(settings.GOOGLE_WORKSPACE_DOMAIN):
        return Check(
            "config.portal_domain",
            "GOOGLE_WORKSPACE_DOMAIN",
            Status.FAIL,
            f"GOOGLE_WORKSPACE_DOMAIN is {settings.GOOGLE_WORKSPACE_DOMAIN!r}: nobody of the team can sign in.",
            "Set GOOGLE_WORKSPACE_DOMAIN to the team's Google Workspace domain.",
        )
    return Check(
        "config.portal_domain", "PORTAL_DOMAIN", Status.OK, f"{domain}, sign-in for @{settings.GOOGLE_WORKSPACE_DOMAIN}"
    )


def _gate_key() -> Check:
    key = settings.GATE_FORWARD_AUTH_KEY or ""
    if len(key) < 32 or key.startswith("change-me"):
        return Check(
            "config.gate_key",
            "GATE_FORWARD_AUTH_KEY",
            Status.FAIL,
            f"The key Traefik proves itself with is {'a placeholder' if key.startswith('change-me') else 'short'} "
            f"({len(key)} characters): whoever guesses it can ask the gate about members' sessions.",
            "Set GATE_FORWARD_AUTH_KEY to `openssl rand -hex 32` in .env, then `make traefik-config` (or restart "
            "the stack) so Traefik's forwardAuth address carries the same key.",
        )
    return Check("config.gate_key", "GATE_FORWARD_AUTH_KEY", Status.OK, f"{len(key)} characters")


def _google() -> Check:
    client_id = settings.GOOGLE_CLIENT_ID
    if not client_id or not settings.GOOGLE_CLIENT_SECRET:
        return Check(
            "config.google",
            "Google sign-in",
            Status.FAIL,
            "GOOGLE_CLIENT_ID or GOOGLE_CLIENT_SECRET is empty: nobody can sign in with Google.",
            "Create an OAuth client (Google Cloud console → APIs & Services → Credentials, type Web application, "
            "redirect URI <PORTAL_URL>/accounts/google/login/callback/) and set both in .env.",
        )
    if not client_id.endswith(".apps.googleusercontent.com"):
        return Check(
            "config.google",
            "Google sign-in",
            Status.WARN,
            f"GOOGLE_CLIENT_ID {client_id!r} does not end in .apps.googleusercontent.com, as Google's client ids do.",
            "Copy the Client ID of the OAuth client from the Google Cloud console into GOOGLE_CLIENT_ID.",
        )
    return Check(
        "config.google", "Google sign-in", Status.OK, client_id.split("-")[0] + "-….apps.googleusercontent.com"
    )


def django_probe() -> Probe:
    return Probe("django", "Django's checks (check --deploy)", _django_checks, timeout=60, hung_fix=_HUNG_DJANGO)


_HUNG_DJANGO = "Run `python manage.py check --deploy` in the worker container and read what it waits for."


def _django_checks() -> list[Check]:
    found = django_checks.run_checks(include_deployment_checks=True)
    rows = []
    for message in found:
        if message.level < django_checks.WARNING or message.id in _DJANGO_DUPLICATES:
            continue
        status = Status.FAIL if message.level >= django_checks.ERROR else Status.WARN
        rows.append(Check(f"django.{message.id}", f"Django {message.id}", status, str(message.msg), message.hint or ""))
    return rows or [Check("django", "Django's checks (check --deploy)", Status.OK, "no problems")]
