"""A Django test client that speaks to the JSON API with a member's own API token."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from gpus.models import Token
from gpus.tokens import token_create
from portal.models import User

API = "/gpus/api/v1"


class ApiClient(Client):
    """Sends ``Authorization: Bearer <token>`` and JSON bodies; no session cookie."""

    def __init__(self, secret: str, **kwargs: Any) -> None:
        super().__init__(headers={"Authorization": f"Bearer {secret}"}, **kwargs)

    def send(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        data = "" if body is None else json.dumps(body)
        return self.generic(method.upper(), API + path, data, content_type="application/json", **kwargs)


def api_client(user: User) -> ApiClient:
    _, secret = token_create(user=user, kind=Token.Kind.API, name="tests", actor=user)
    return ApiClient(secret)
