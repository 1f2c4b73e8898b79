"""Slack incoming webhook: the one place the portal talks to Slack."""

from __future__ import annotations

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
        raise SlackError(f"Slack webhook unreachable: {exc}") from exc
    if response.status_code >= 300:
        raise SlackError(f"Slack webhook answered {response.status_code}: {response.text[:200]}")
    return True
