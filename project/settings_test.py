"""Test settings: the production module on PostgreSQL + Redis, plus the local OpenID Connect
stand-in for Google. allauth reads the google provider's URLs when its views module is
imported, so they are set here and not with override_settings."""

from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-" + "x" * 50)
os.environ.setdefault("GOOGLE_CLIENT_ID", "portal-test")
os.environ.setdefault("GOOGLE_CLIENT_SECRET", "portal-test-secret")
os.environ.setdefault("GOOGLE_WORKSPACE_DOMAIN", "corp.example")
os.environ.setdefault("PORTAL_DOMAIN", "corp.example")
os.environ.setdefault("PORTAL_SECURE", "false")
os.environ.setdefault("GATE_FORWARD_AUTH_KEY", "gate-test-key")
# pytest-xdist's processes (gw0, gw1, ...; scripts/run-tests.sh) each get their own database
# (pytest-django adds the suffix), Redis database, storage root and OIDC stand-in port.
_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "")


def _per_process_default(name: str, value: str) -> None:
    """os.environ.setdefault, except for a value this module set in a parent process: xdist's
    controller imports these settings too, and its processes inherit its environment, so a
    plain setdefault gave them all the controller's Redis database and storage root. A value
    still equal to what the parent set is set again here; one a caller chose (a worker started
    with a storage root of its own) stays."""
    marker = f"PORTAL_TEST_DEFAULT_{name}"
    if name not in os.environ or os.environ[name] == os.environ.get(marker):
        os.environ[name] = os.environ[marker] = value


# Members' folders made by tests land here, never in /srv.
_per_process_default("STORAGE_ROOT", "/tmp/portal-test-storage" + (f"-{_xdist_worker}" if _xdist_worker else ""))  # noqa: S108
# Tests read snapshots in the test process (tests/backups/test_restore.py asks a real worker once).
os.environ.setdefault("BACKUP_BROWSE_LOCAL", "true")
# Tests' hosts have names of their own (h5t-…), each standing for a routed server; the default,
# only "local", is tested in tests/workspaces/test_card_reach.py.
os.environ.setdefault("PORTAL_WEB_HOSTS", "*")
# Prometheus' bearer token for /metrics (tests/monitoring/test_metrics_view.py).
os.environ.setdefault("METRICS_TOKEN", "metrics-test-token-" + "m" * 32)
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal")
# Each parallel run (PORTAL_TEST_DB_SUFFIX) and each xdist process gets its own Redis database,
# so a test worker never takes another run's tasks and a queue a test reads holds only its own.
_redis_db = 15 - (sum(map(ord, os.environ.get("PORTAL_TEST_DB_SUFFIX", "") + _xdist_worker)) % 12)
_per_process_default("REDIS_URL", f"redis://127.0.0.1:6379/{_redis_db}")

from project.settings import *  # noqa: E402,F403
from project.settings import SOCIALACCOUNT_PROVIDERS  # noqa: E402

# Parallel test runs (several checkouts, xdist) each get their own database.
_suffix = os.environ.get("PORTAL_TEST_DB_SUFFIX", "")
DATABASES["default"]["TEST"] = {"NAME": f"test_portal{('_' + _suffix) if _suffix else ''}"}  # noqa: F405

_xdist_index = int(_xdist_worker[2:]) + 1 if _xdist_worker[2:].isdigit() else 0
OIDC_MOCK_PORT = int(os.environ.get("OIDC_MOCK_PORT", str(19411 + _xdist_index)))
OIDC_MOCK_URL = f"http://localhost:{OIDC_MOCK_PORT}"
SOCIALACCOUNT_PROVIDERS["google"].update(
    {
        "AUTHORIZE_URL": f"{OIDC_MOCK_URL}/oauth2/authorize",
        "ACCESS_TOKEN_URL": f"{OIDC_MOCK_URL}/oauth2/token",
        "ID_TOKEN_ISSUER": OIDC_MOCK_URL,
        "IDENTITY_URL": f"{OIDC_MOCK_URL}/userinfo",
        "CERTS_URL": f"{OIDC_MOCK_URL}/jwks",
        "OAUTH_PKCE_ENABLED": True,
    }
)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["*"]
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
