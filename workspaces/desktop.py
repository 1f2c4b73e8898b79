"""One-click sign-in to a workspace's desktop through Guacamole's encrypted JSON auth
(guacamole-auth-json, research/sso-routing.md §3.2).

The portal mints a short-lived, single-use token naming one RDP connection (the member's own
container, reached by guacd on the owner's own Docker network) and sends the browser to
Guacamole with it. Guacamole decrypts and verifies it with the same key (its
JSON_SECRET_KEY), so the connection's parameters, the xrdp password among them, never
reach the browser in the clear. Only ``desktop_url`` reads settings; the rest is pure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.conf import settings
from django.utils.crypto import salted_hmac

from workspaces.models import Workspace

TOKEN_LIFETIME = timedelta(seconds=60)  # time enough to load Guacamole; the token is single-use too
RDP_PORT = "3389"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def guacamole_token(key_hex: str, payload: dict[str, Any]) -> str:
    """``payload`` as compact JSON, signed and encrypted for guacamole-auth-json."""
    return guacamole_seal(key_hex, json.dumps(payload, separators=(",", ":")).encode())


def guacamole_seal(key_hex: str, body: bytes) -> str:
    """``base64(AES-128-CBC(key, IV=0, PKCS7(HMAC-SHA256(key, body) + body)))``, the format
    guacamole-auth-json decrypts; ``key_hex`` is its 32-hex-digit json-secret-key."""
    key = bytes.fromhex(key_hex)
    if len(key) != 16:
        raise ValueError("the Guacamole JSON secret key must be 32 hex digits (128 bits)")
    signature = hmac.new(key, body, hashlib.sha256).digest()
    padder = padding.PKCS7(128).padder()
    plain = padder.update(signature + body) + padder.finalize()
    # A zero IV is what Guacamole expects; the signature leading the plaintext keeps equal
    # prefixes of different payloads from giving equal ciphertext blocks.
    encryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")


def client_id(connection_name: str) -> str:
    """Guacamole's client identifier of a connection from the "json" data source (the web
    app's ClientIdentifier: name, type "c", data source, NUL-separated, base64url unpadded)."""
    raw = f"{connection_name}\0c\0json".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def desktop_password(workspace: Workspace) -> str:
    """The Linux password xrdp checks for this workspace's member: derived, never stored,
    and never shown (it travels only inside the encrypted token and the container's
    environment). Stable for the workspace's life. It depends on SECRET_KEY: after a key
    change it differs, so the container spec (and its hash) differs too and the next start
    recreates the container with the new password."""
    created = workspace.created.astimezone(UTC).isoformat()  # the same instant gives the same text
    return salted_hmac("portal.workspace.desktop", f"{workspace.pk}:{created}").hexdigest()[:32]


def desktop_payload(workspace: Workspace, *, now: datetime) -> dict[str, Any]:
    """The JSON Guacamole gets: the member, an expiry 60 s from ``now``, one RDP connection."""
    owner = workspace.owner.username
    name = workspace.container_name
    parameters = {
        "hostname": name,  # guacd, joined to the owner's network, resolves the container by name
        "port": RDP_PORT,
        "username": owner,
        "password": desktop_password(workspace),
        "security": "any",
        "ignore-cert": "true",  # xrdp's certificate is made per container (entrypoint.d)
        "resize-method": "display-update",
        "server-layout": "en-us-qwerty",
    }
    return {
        "username": owner,
        "expires": (now + TOKEN_LIFETIME - _EPOCH) // timedelta(milliseconds=1),
        "singleUse": True,
        "connections": {name: {"protocol": "rdp", "parameters": parameters}},
    }


def desktop_url(workspace: Workspace, *, now: datetime) -> str:
    """The one-click link: Guacamole re-authenticates with the ``data`` query inside its
    ``#`` route, so the token stays out of every proxy's access log."""
    token = guacamole_token(settings.GUACAMOLE_JSON_SECRET_KEY, desktop_payload(workspace, now=now))
    connection = client_id(workspace.container_name)
    return f"{settings.GUACAMOLE_URL}/#/client/{connection}?data={quote(token, safe='')}"
