"""Slack incoming webhook: the one place the portal talks to Slack."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from django.conf import settings


class SlackError(Exception):
    """Slack could not be reached or refused the message (worth retrying)."""


def slack_post(text: str) -> bool:
    """Post ``text`` to the configured webhook. False when no webhook is configured."""
    url = settings.SLACK_WEBHOOK_URL
    if not url:
        return False
    try:
        response = requests.post(url, json={"text": text}, timeout=10)
    except requests.RequestException as exc:
        raise SlackError(_unreachable(url, exc)) from None
    if response.status_code >= 300:
        raise SlackError(f"Slack webhook answered {response.status_code}: {response.text[:200]}")
    return True


def _unreachable(url: str, exc: Exception) -> str:
    # requests' message quotes the URL, whose path is the webhook's secret: name the host only.
    # "from None" keeps it out of the traceback too (Celery logs a retried task's exception).
    return f"Slack webhook unreachable ({type(exc).__name__} at {urlsplit(url).netloc})"


def slack_user_email(slack_user_id: str) -> str | None:
    """The e-mail address of a Slack user, from the Web API's users.info (the bot token needs
    users:read and users:read.email). None when Slack has no address for them."""
    token = settings.SLACK_BOT_TOKEN
    if not token:
        raise SlackError("SLACK_BOT_TOKEN is not set")
    try:
        response = requests.get(
            f"{settings.SLACK_API_URL}/users.info",
            params={"user": slack_user_id},
            headers={"Authorization": f"Bearer {token}"},
            timeout=2,  # Slack waits 3 seconds for the slash command's answer
        )
        data = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise SlackError(f"Slack's users.info did not answer: {exc}") from exc
    if not isinstance(data, dict) or not data.get("ok"):
        error = data.get("error", "") if isinstance(data, dict) else ""
        raise SlackError(f"Slack's users.info refused: {error or response.status_code}")
    user = data.get("user")
    profile = user.get("profile") if isinstance(user, dict) else None
    email = profile.get("email") if isinstance(profile, dict) else None
    return email if isinstance(email, str) and email else None


def slack_webhook_probe(*, timeout: float = 10) -> tuple[int, str]:
    """Ask the webhook whether it exists without posting to the channel: an empty JSON object
    is refused by a live webhook with 400 ("invalid_payload", "no_text") and by a revoked or
    mistyped one with 403/404/410 ("invalid_token", "no_service", "channel_is_archived").
    Returns (status, the first 200 characters of the body); SlackError when nothing answers."""
    url = settings.SLACK_WEBHOOK_URL
    try:
        response = requests.post(url, json={}, timeout=timeout)
    except requests.RequestException as exc:
        raise SlackError(_unreachable(url, exc)) from None
    return response.status_code, response.text[:200].strip()
