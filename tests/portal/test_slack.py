"""The Slack webhook's URL is its secret (anyone holding it posts to the channel): a failed post
never carries it into the error a retried task logs."""

from __future__ import annotations

import socket

import pytest

from portal.slack import SlackError, slack_post

SECRET_PATH = "/services/T000/B000/s3cr3tw3bh00k"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once it is closed


def test_an_unreachable_webhook_is_named_by_its_host_only(settings) -> None:  # type: ignore[no-untyped-def]
    settings.SLACK_WEBHOOK_URL = f"http://127.0.0.1:{_closed_port()}{SECRET_PATH}"
    with pytest.raises(SlackError) as caught:
        slack_post("disk full")
    assert "127.0.0.1" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
    assert caught.value.__cause__ is None  # requests' own message, which quotes the URL, is dropped
    assert caught.value.__suppress_context__


def test_no_webhook_configured_posts_nothing(settings) -> None:  # type: ignore[no-untyped-def]
    settings.SLACK_WEBHOOK_URL = ""
    assert slack_post("disk full") is False
