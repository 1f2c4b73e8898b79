"""Local stand-ins for the two outside services the doctor asks and that cannot exist here: a
Slack incoming webhook and Guacamole's token API with guacamole-auth-json. Each answers as the
real one does (Slack: 400 "no_text" to an empty message on a live webhook, 404 "no_service" on a
removed one; Guacamole: the sealed data decrypted and its HMAC checked with its own key, 200 and
an authToken, or 403)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

GUACAMOLE_KEY = "0123456789abcdef0123456789abcdef"
SLACK_LIVE = "/services/T0/B0/live"


@dataclass
class StandIn:
    base: str
    posted: list[dict[str, object]] = field(default_factory=list)  # Slack messages that would show
    signed_in: list[str] = field(default_factory=list)  # Guacamole usernames that signed in
    signed_out: list[str] = field(default_factory=list)


def _unseal(key_hex: str, data: str) -> dict[str, object] | None:
    key = bytes.fromhex(key_hex)
    try:
        decryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).decryptor()
        plain = decryptor.update(base64.b64decode(data)) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        plain = unpadder.update(plain) + unpadder.finalize()
    except ValueError:
        return None
    signature, body = plain[:32], plain[32:]
    if not hmac.compare_digest(signature, hmac.new(key, body, hashlib.sha256).digest()):
        return None
    return json.loads(body)  # type: ignore[no-any-return]


@contextmanager
def stand_in() -> Iterator[StandIn]:
    state = StandIn(base="")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: bytes = b"", kind: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == SLACK_LIVE:
                message = json.loads(body or b"{}")
                if not message.get("text"):
                    return self._answer(400, b"no_text")
                state.posted.append(message)
                return self._answer(200, b"ok")
            if self.path.startswith("/services/"):
                return self._answer(404, b"no_service")
            if self.path == "/guacamole/api/tokens":
                data = parse_qs(body.decode())["data"][0]
                payload = _unseal(GUACAMOLE_KEY, data)
                if payload is None:
                    return self._answer(403, b'{"message":"Invalid login.","type":"INVALID_CREDENTIALS"}')
                state.signed_in.append(str(payload["username"]))
                return self._answer(200, json.dumps({"authToken": "T0KEN"}).encode(), "application/json")
            return self._answer(404, b"Not Found")

        def do_DELETE(self) -> None:
            state.signed_out.append(self.path.rsplit("/", 1)[-1])
            self._answer(204)

        def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
