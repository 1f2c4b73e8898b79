"""The one settings module. Everything that differs between a laptop and production comes
from environment variables (see .env.example); a bad value stops start-up with a message
that names the variable."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from hostops.nvidia import parse_inventory_config
from hostops.smart import DEVICE as SMART_DEVICE
from portal.env import env_bool, env_int, env_list, env_networks, env_size, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    if os.environ.get("SECRET_KEY") or os.environ.get("SECRET_KEY_FILE"):
        return env_str("SECRET_KEY")
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off")
    # Development: one random key kept under var/, so sessions survive restarts.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()

# --- where the portal lives ------------------------------------------------------------
PORTAL_DOMAIN = env_str("PORTAL_DOMAIN", "localhost")
# `make run`: DEBUG and no domain, so no Traefik in front and nothing on <name>.<domain>.
_LOCAL_DEVELOPMENT = DEBUG and not (os.environ.get("PORTAL_DOMAIN") or os.environ.get("PORTAL_DOMAIN_FILE"))
# Are members' web addresses (code-server, Jupyter, the Guacamole desktop) and the team
# services routed, by Traefik under PORTAL_DOMAIN? Off: the cards say they can't be reached
# here and show how to get in over SSH instead of links that end in "connection refused".
PORTAL_WEB_ROUTES = env_bool("PORTAL_WEB_ROUTES", not _LOCAL_DEVELOPMENT)
PORTAL_HOST = env_str("PORTAL_HOST", "127.0.0.1" if DEBUG else f"portal.{PORTAL_DOMAIN}")
# HTTPS everywhere in production; off for `make run` on http://127.0.0.1:8000.
PORTAL_SECURE = env_bool("PORTAL_SECURE", not DEBUG)
PORTAL_SCHEME = "https" if PORTAL_SECURE else "http"
PORTAL_URL = env_str("PORTAL_URL", f"{PORTAL_SCHEME}://{PORTAL_HOST}")
# "portal" is the name Traefik and the healthcheck use on the Docker network.
ALLOWED_HOSTS = [PORTAL_HOST, "portal", "localhost", "127.0.0.1", *env_list("EXTRA_ALLOWED_HOSTS", [])]
CSRF_TRUSTED_ORIGINS = [PORTAL_URL]
# Proxies whose X-Forwarded-For is believed (CIDRs; Traefik's network in compose). A request
# from anywhere else is taken at its own address, so nobody can pick the address that the
# audit log records and the rate limits count by sending the header themselves.
TRUSTED_PROXIES = env_networks("PORTAL_TRUSTED_PROXIES", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_celery_beat",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "portal",
    "workspaces",
    "gpus",
    "storage",
    "backups",
    "monitoring",
]

MIDDLEWARE = [
    "workspaces.gate.GateMiddleware",  # first: Traefik's forward-auth must not pay for sessions
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
AUTH_USER_MODEL = "portal.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.portal",
            ],
        },
    },
]

# --- database, cache, broker ------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")
try:
    DATABASES = {"default": environ.Env.db_url_config(DATABASE_URL)}
except Exception as exc:  # django-environ raises several types for a bad URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from exc
if not DATABASES["default"].get("ENGINE"):
    raise ImproperlyConfigured(f"DATABASE_URL has no known scheme (postgres://, sqlite:///): {DATABASE_URL!r}")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The zero-setup path: serialize writers instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "")  # or REDIS_URL_FILE: a second server's worker reads it from a secret
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
else:
    # `make run`: no server at all. The cache is a folder shared by web and worker processes,
    # and Celery's filesystem transport moves messages through another folder.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
    _queue_dir = VAR_DIR / "broker"
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
    for _sub in ("queue", "control"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)

SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600, minimum=300)

CELERY_TASK_IGNORE_RESULT = True  # progress lives in Operation rows, never in Celery results
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "portal"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Task modules beside each app's tasks.py (autodiscovered), one per area of an app.
CELERY_IMPORTS = [
    "storage.scrub_tasks",
    "storage.ingestion_tasks",
    "storage.disk_tasks",
    "backups.alerts_tasks",
    "backups.restore_tasks",
    "backups.offsite_tasks",
    "backups.offsite_admin_tasks",
    "backups.drill_tasks",
]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The one place periodic work is declared (django-celery-beat copies it into the database).
CELERY_BEAT_SCHEDULE = {
    # One heartbeat to every queue, the portal's and each host's: /healthz reads the portal's,
    # and monitoring/heartbeats.py tells a host's worker (or beat) that is down.
    "worker-heartbeat": {"task": "portal.tasks.worker_heartbeat_fanout_task", "schedule": 30.0},
    "reap-stuck-operations": {"task": "portal.tasks.operation_reap_task", "schedule": 60.0},
    "prune-audit-and-operations": {
        "task": "portal.tasks.history_prune_task",
        "schedule": crontab(minute=17, hour=3),  # daily 03:17, away from the 04:00 ingest
    },
    # Fans out to each host's queue: reconcile (one list call), CPU/memory figures, idle policy.
    "workspaces-housekeeping": {"task": "workspaces.tasks.workspace_housekeeping_task", "schedule": 60.0},
    # Bookings start and end, warnings before boundaries, GPUs granted or taken (gpus/tick.py).
    "gpu-booking-tick": {"task": "gpus.tasks.booking_tick_task", "schedule": 60.0},
    # GPUs (gpus/tasks.py), each fanned out to the hosts' queues: the inventory from NVML or
    # GPU_INVENTORY, one sample per GPU a minute where NVML reads them, and the samples' pruning.
    "gpus-inventory": {"task": "gpus.tasks.gpu_inventory_fanout_task", "schedule": 600.0},
    "gpus-samples": {"task": "gpus.tasks.gpu_sample_fanout_task", "schedule": 60.0},
    "gpus-prune-samples": {"task": "gpus.tasks.gpu_sample_prune_task", "schedule": crontab(minute=47, hour=3)},
    # Storage (storage/tasks.py): members' usage from the qgroups, limits applied, warnings sent.
    # The monthly scrub (storage/scrub.py) and each ingestion job (storage/ingestion.py) are
    # django-celery-beat rows that admins edit in the portal.
    "storage-usage": {"task": "storage.tasks.storage_usage_fanout_task", "schedule": 600.0},
    # A scrub whose worker died is sent again to a live one, which follows the kernel's scrub.
    "storage-scrub-watch": {"task": "storage.scrub_tasks.scrub_watch_task", "schedule": 60.0},
    # Backups (backups/alerts.py): a tier failing or overdue is told once, and its end too.
    "backups-alerts": {"task": "backups.alerts_tasks.backup_alerts_task", "schedule": 600.0},
    # Monitoring (monitoring/tasks.py): the host's CPU, memory, load, pressure and disks a minute,
    # on the local host's queue; every 5 minutes their 5-minute and hourly averages, and pruning.
    "monitoring-host-sample": {"task": "monitoring.tasks.host_sample_fanout_task", "schedule": 60.0},
    "monitoring-rollup": {"task": "monitoring.tasks.samples_rollup_task", "schedule": 300.0},
    # The doctor (monitoring/doctor.py): every check on the local host's worker, for the dashboard's card.
    "monitoring-doctor": {"task": "monitoring.tasks.doctor_schedule_task", "schedule": 3600.0},
    # Alert rules against the figures (monitoring/alerts.py), on the default queue; Slack is sent
    # by its own retrying tasks, so a Slack outage never delays the next evaluation.
    "monitoring-alerts": {
        "task": "monitoring.tasks.alerts_evaluate_task",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
}

# --- login ----------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
GOOGLE_WORKSPACE_DOMAIN = env_str("GOOGLE_WORKSPACE_DOMAIN", "example.com").lower()
GOOGLE_CLIENT_ID = env_str("GOOGLE_CLIENT_ID", "")
GOOGLE_CLIENT_SECRET = env_str("GOOGLE_CLIENT_SECRET", "")
if not DEBUG and not (GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET):
    raise ImproperlyConfigured("GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET are required when DEBUG is off")
SOCIALACCOUNT_ONLY = True  # no allauth password or sign-up views; break-glass login is ours
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*"]
ACCOUNT_ADAPTER = "portal.adapters.InviteOnlyAccountAdapter"
SOCIALACCOUNT_ADAPTER = "portal.adapters.WorkspaceSocialAdapter"
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_PROVIDERS: dict[str, dict[str, object]] = {
    "google": {
        "APP": {"client_id": GOOGLE_CLIENT_ID, "secret": GOOGLE_CLIENT_SECRET},
        "SCOPE": ["openid", "profile", "email"],
        # Only a hint for Google's account chooser; the hd claim is checked in the adapter.
        "AUTH_PARAMS": {"hd": GOOGLE_WORKSPACE_DOMAIN, "prompt": "select_account"},
        "OAUTH_PKCE_ENABLED": True,
    }
}
# Break-glass password login (admins only): failures allowed per (IP, username) window.
BREAKGLASS_MAX_FAILURES = env_int("BREAKGLASS_MAX_FAILURES", 5, minimum=1)
BREAKGLASS_WINDOW_SECONDS = env_int("BREAKGLASS_WINDOW_SECONDS", 900, minimum=60)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# --- the gate in front of members' services (workspaces/gate.py) -----------------------------
# Traefik's forwardAuth address carries this key (?k=...), proving the caller is Traefik.
GATE_FORWARD_AUTH_KEY = env_str("GATE_FORWARD_AUTH_KEY", secrets.token_urlsafe(32) if DEBUG else None)
GATE_INDEX_TTL = env_int("GATE_INDEX_TTL", 5, minimum=1)  # seconds until a revocation bites
GATE_COOKIE_MAX_AGE = env_int("GATE_COOKIE_MAX_AGE", 8 * 3600, minimum=300)
# The servers (Host names) whose workspaces Traefik and guacd reach: the ones running beside
# the portal ("*": every server). A workspace on another server gets SSH and X2Go only, and
# its card says so.
PORTAL_WEB_HOSTS = env_list("PORTAL_WEB_HOSTS", ["local"])
# May admins open members' code-server and Jupyter? Off: their files are their own.
GATE_ALLOW_ADMINS = env_bool("GATE_ALLOW_ADMINS", False)

# --- the team services behind the same gate (docker-compose.yml, render_deploy) ------------
# Who may open each team service at <name>.<PORTAL_DOMAIN>: "staff" (admins) or "member" (any
# active member). Netdata, Prometheus, Dozzle and Portainer see the host, every container's
# logs or the Docker socket, so admins only. GATE_INFRA_ROLES (name=role, comma-separated)
# replaces the whole list.
_GATE_INFRA_DEFAULT = [
    # Grafana: its dashboards name members (storage, GPU hours each), which members do not see of
    # one another in the portal; admins are its Admins. "metrics=member" makes members Viewers.
    "metrics=staff",
    "metrics-backend=staff",  # Prometheus: raw queries, targets, the admin API
    "health=staff",  # Netdata: the host's processes, disks, every container
    "logs=staff",  # Dozzle: every container's logs
    "portainer=staff",  # Portainer: the Docker socket, root on the host
    "remote=member",  # Guacamole: each member's own desktop (its JSON auth picks the connection)
    "tensorboard=member",  # the team's shared TensorBoard runs
]


def _gate_infra_hosts() -> dict[str, str]:
    hosts: dict[str, str] = {}
    for item in env_list("GATE_INFRA_ROLES", _GATE_INFRA_DEFAULT):
        name, _, role = item.partition("=")
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name) or role not in {"staff", "member"}:
            raise ImproperlyConfigured(f"GATE_INFRA_ROLES: {item!r} is not <name>=staff or <name>=member")
        hosts[f"{name}.{PORTAL_DOMAIN}"] = role
    return hosts


GATE_INFRA_HOSTS = _gate_infra_hosts()
# Read only by `manage.py render_deploy` (workspaces/deploy.py), which checks them: Let's
# Encrypt's account address for Traefik's wildcard certificate, and the Cloudflare Tunnel's id
# (`cloudflared tunnel create`; its credentials JSON is a compose secret, not a setting).
TRAEFIK_ACME_EMAIL = env_str("TRAEFIK_ACME_EMAIL", "")
CLOUDFLARED_TUNNEL_ID = env_str("CLOUDFLARED_TUNNEL_ID", "").lower()

# --- HTTPS and cookies ------------------------------------------------------------------
# Members' containers live on sibling subdomains, so the portal's cookies are host-only
# (__Host- prefix: Secure, Path=/, no Domain) and can't be read or tossed by those hosts.
if PORTAL_SECURE:
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Probed and scraped over plain HTTP inside the Docker network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    # The preload directive only matters once the domain is submitted to browsers' list.
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_DOMAIN = None
CSRF_COOKIE_DOMAIN = None
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- i18n, static -----------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# --- the server and its defaults (seed: IMPLEMENTATION-REPORT.md) -----------------------
QUOTA_DEFAULTS = {
    "mem_guarantee": env_size("QUOTA_MEM_GUARANTEE", "32G"),
    "mem_limit": env_size("QUOTA_MEM_LIMIT", "100G"),
    "swap": env_size("QUOTA_SWAP", "50G"),
    "cpuset": env_str("QUOTA_CPUSET", "-"),  # "-" means every CPU of the host
    "max_gpus": env_int("QUOTA_MAX_GPUS", 1, minimum=0),
    "storage_soft": env_size("QUOTA_STORAGE_SOFT", "1T"),
}
if QUOTA_DEFAULTS["cpuset"] == "-":
    QUOTA_DEFAULTS["cpuset"] = ""
if QUOTA_DEFAULTS["mem_guarantee"] > QUOTA_DEFAULTS["mem_limit"]:  # type: ignore[operator]
    raise ImproperlyConfigured("QUOTA_MEM_GUARANTEE must not exceed QUOTA_MEM_LIMIT")
UID_START = env_int("PORTAL_UID_START", 1000, minimum=1000)
SSH_HOST = env_str("SSH_HOST", "127.0.0.1" if _LOCAL_DEVELOPMENT else PORTAL_DOMAIN)
OPERATION_STUCK_SECONDS = env_int("OPERATION_STUCK_SECONDS", 1800, minimum=60)
# A job whose workers keep dying (OOM, a crash) is given up after this many tries.
OPERATION_MAX_ATTEMPTS = 3
WORKER_HEARTBEAT_STALE_SECONDS = env_int("WORKER_HEARTBEAT_STALE_SECONDS", 120, minimum=30)
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 365, minimum=30)
SLACK_WEBHOOK_URL = env_str("SLACK_WEBHOOK_URL", "")
# A failed post is retried 5 times, after this many seconds, then twice as long each time.
SLACK_RETRY_SECONDS = env_int("SLACK_RETRY_SECONDS", 30, minimum=1)
# The /gpu slash command (gpus/slack_command.py). The Slack app's Signing Secret (Basic
# Information -> App Credentials) proves a request comes from Slack; unset, every /gpu request
# is refused.
SLACK_SIGNING_SECRET = env_str("SLACK_SIGNING_SECRET", "")
# The app's Bot User OAuth Token (xoxb-...) with the users:read and users:read.email scopes: the
# command asks Slack's users.info for a Slack user's e-mail to find their member (once, then
# kept). Unset: only Slack users already linked can use /gpu.
SLACK_BOT_TOKEN = env_str("SLACK_BOT_TOKEN", "")
SLACK_API_URL = env_str("SLACK_API_URL", "https://slack.com/api").rstrip("/")


def _team_links() -> list[tuple[str, str, str]]:
    """(name, url, what it is for). Each may be set or blanked with LINK_<NAME>; without web
    routes (PORTAL_WEB_ROUTES off) the dashboard shows only those set (TEAM_LINKS_SET)."""
    links = [
        ("Grafana", f"https://metrics.{PORTAL_DOMAIN}", "Dashboards of CPU, GPU, memory and disks"),
        ("Netdata", f"https://health.{PORTAL_DOMAIN}", "Live health of the server, SMART data"),
        ("Guacamole", f"https://remote.{PORTAL_DOMAIN}", "Remote desktops in the browser"),
        ("FileBrowser", f"https://files.{PORTAL_DOMAIN}", "Browse and share files"),
        ("Dozzle", f"https://logs.{PORTAL_DOMAIN}", "Container logs"),
        ("Portainer", f"https://portainer.{PORTAL_DOMAIN}", "Docker administration"),
        ("TensorBoard", f"https://tensorboard.{PORTAL_DOMAIN}", "Shared TensorBoard"),
    ]
    result = []
    for name, default, purpose in links:
        url = os.environ.get(f"LINK_{name.upper()}", default)
        if url:
            result.append((name, url, purpose))
    return result


TEAM_LINKS = _team_links()
TEAM_LINKS_SET = frozenset(name for name, _url, _purpose in TEAM_LINKS if os.environ.get(f"LINK_{name.upper()}"))

# --- what each app adds to the shared pages (portal/panels.py; ARCHITECTURE.md) ------------
# The name in the header and the window title.
PORTAL_SITE_NAME = env_str("PORTAL_SITE_NAME", "Team GPU server")
# Dashboard cards in order: each function takes the request and returns a Panel or None.
PORTAL_DASHBOARD_CARDS = [
    "workspaces.cards.dashboard_card",
    "monitoring.alert_cards.alerts_card",  # admins: incidents firing now, at the top of the side column
    "gpus.cards.gpu_card",
    "portal.cards.recent_jobs_card",
    "storage.cards.storage_card",
    "backups.cards.schedule_card",
    "backups.restore_cards.snapshots_card",
    "monitoring.cards.doctor_card",  # admins: the doctor's last report
    "portal.cards.limits_card",
    "portal.cards.team_services_card",
]
# Columns of the members list: each function takes the page's members, one query for all.
PORTAL_MEMBER_COLUMNS = ["workspaces.cards.member_column", "storage.cards.member_column"]
# Sections of a member's page (below the core's own): function(request, member) -> Panel.
PORTAL_MEMBER_SECTIONS = [
    "workspaces.cards.member_section",
    "storage.cards.member_section",
    "backups.restore_cards.member_section",
]
# Sections of the Policies page (below the core's idle policy): function(request) -> Panel.
PORTAL_POLICY_SECTIONS = ["gpus.cards.policy_section"]
# Columns of the Servers page: function(hosts) -> Column, one query for the page.
PORTAL_HOST_COLUMNS = ["workspaces.cards.host_column", "gpus.cards.host_column"]
# Main menu: (label, URL name, "member" or "staff", prefix of the view names it covers).
PORTAL_NAVIGATION = [
    ("Dashboard", "dashboard", "member", "dashboard"),
    ("GPU calendar", "gpus:calendar", "member", "gpus:calendar"),
    ("GPU usage", "gpus:usage", "member", "gpus:usage"),
    ("Feeds & API", "gpus:tokens", "member", "gpus:token"),
    ("Members", "member-list", "staff", "member-"),
    ("Workspaces", "workspaces:admin-list", "staff", "workspaces:"),
    ("Audit log", "audit-list", "staff", "audit-"),
    ("Policies", "site-policies", "staff", "site-policies"),
    ("Servers", "host-list", "staff", "host-"),
    ("GPUs", "gpus:admin-gpus", "staff", "gpus:admin"),
    ("Storage", "storage:overview", "staff", "storage:"),
    ("Backups", "backups:overview", "staff", "backups:"),
    ("Server health", "monitoring:overview", "staff", "monitoring:overview"),
    ("Cost", "monitoring:cost", "staff", "monitoring:cost"),
    ("Alerts", "monitoring:alerts", "staff", "monitoring:alert"),
]

# --- storage (storage/) -------------------------------------------------------------------
# The root of the server's storage: on BTRFS (the RAID10 of the data disks) each member's home
# and scratch become subvolumes under homes/ and scratch/, with a qgroup for usage and limits;
# datasets/ (read-only in workspaces) and portal/ (the portal's own data) are subvolumes too.
# Anywhere else (make run) they are plain folders and usage is not measured.
STORAGE_ROOT = env_str("STORAGE_ROOT", "/srv").rstrip("/") or "/"
if not STORAGE_ROOT.startswith("/") or STORAGE_ROOT == "/":
    raise ImproperlyConfigured(f"STORAGE_ROOT must be an absolute directory below /, got {STORAGE_ROOT!r}")
# Hard limits warn at this share of the limit, before a write fails.
STORAGE_HARD_WARN_PERCENT = 90
# Every pass over the qgroups, and how long one command may take before it is given up.
STORAGE_USAGE_SECONDS = 600
STORAGE_COMMAND_TIMEOUT = env_int("STORAGE_COMMAND_TIMEOUT", 300, minimum=10)
# The disk planning page (storage/planning.py) offers loop devices as disks only when this is on:
# tests and demos plan onto loops; a real server never does (its loops are snaps and images).
STORAGE_DISKS_INCLUDE_LOOP = env_bool("STORAGE_DISKS_INCLUDE_LOOP", False)
# A scrub still running after this many hours is cancelled (and recorded so), never left hanging.
STORAGE_SCRUB_MAX_HOURS = env_int("STORAGE_SCRUB_MAX_HOURS", 24, minimum=1)
# rclone remotes for data ingestion (and backups): a JSON list of {"name", "type", "options",
# "secret_file"}; credentials are read from each secret_file, never from here.
RCLONE_REMOTES_JSON = env_str("RCLONE_REMOTES", "[]")  # read by storage.remotes, which checks it
# Where the worker writes rclone.conf (mode 0600, rewritten from the secret files).
RCLONE_CONFIG_DIR = env_str("RCLONE_CONFIG_DIR", str(BASE_DIR / "var" / "rclone"))
# The nightly backup's start (issue: ingestion must be done by then; an alert says otherwise).
BACKUP_START_HOUR = env_int("BACKUP_START_HOUR", 6, minimum=0)
# Members browsing their snapshots (backups/restore.py): the storage worker lists a folder and
# the page waits at most this long. With BACKUP_BROWSE_LOCAL the web process reads the
# snapshots itself (it sees the storage root: make run, a single-host install), and only then
# offers single-file downloads, up to BACKUP_DOWNLOAD_MAX_BYTES; elsewhere members restore.
BACKUP_BROWSE_TIMEOUT = env_int("BACKUP_BROWSE_TIMEOUT", 10, minimum=1)
BACKUP_BROWSE_LOCAL = env_bool("BACKUP_BROWSE_LOCAL", _LOCAL_DEVELOPMENT)
BACKUP_DOWNLOAD_MAX_BYTES = env_size("BACKUP_DOWNLOAD_MAX_BYTES", "512M")
# The offsite tier (backups/offsite.py): restic, nightly, from the hour's BTRFS snapshots.
# The repository: an absolute path or rclone:<remote>:<path>, the remote one of RCLONE_REMOTES
# (a Drive remote: its token is pasted once on the Backups page, or is in its secret_file).
# Empty: the tier is not set up, and its page says so.
BACKUP_RESTIC_REPOSITORY = env_str("BACKUP_RESTIC_REPOSITORY", "")
# The repository's password: a file only the worker reads (restic reads it; never argv, never
# the environment's RESTIC_PASSWORD). RESTIC_PASSWORD_FILE is honoured as its other name.
BACKUP_RESTIC_PASSWORD_FILE = env_str(
    "BACKUP_RESTIC_PASSWORD_FILE", os.environ.get("RESTIC_PASSWORD_FILE", str(VAR_DIR / "secrets" / "restic-password"))
)
# Each source's snapshot is mounted read-only at <this>/<source> while restic reads it, one fixed
# path per source, so restic finds last night's snapshot as the parent and reads only changes.
BACKUP_RESTIC_MOUNT_ROOT = env_str("BACKUP_RESTIC_MOUNT_ROOT", "/run/portal-backup")
# restic's --host on every snapshot: forget groups by host and path, and a container's own
# hostname changes with each deployment.
BACKUP_RESTIC_HOST = env_str("BACKUP_RESTIC_HOST", "portal")
# restic's cache (index and tree blobs): on Drive it saves most of each night's listing.
BACKUP_RESTIC_CACHE_DIR = env_str("BACKUP_RESTIC_CACHE_DIR", str(VAR_DIR / "restic-cache"))
# One night's run (all sources) is stopped after this many hours and recorded as failed.
BACKUP_RESTIC_MAX_HOURS = env_int("BACKUP_RESTIC_MAX_HOURS", 20, minimum=1)
# forget runs after every backup; prune (which rewrites packs, slow on Drive) on this weekday
# (0 Monday .. 6 Sunday, server time), or every night with -1.
BACKUP_RESTIC_PRUNE_WEEKDAY = env_int("BACKUP_RESTIC_PRUNE_WEEKDAY", 6, minimum=-1)
# The restore drill: how many files it restores and compares each month.
BACKUP_DRILL_SAMPLE = env_int("BACKUP_DRILL_SAMPLE", 20, minimum=1)

# --- workspaces (workspaces/) -------------------------------------------------------------
# Which GPUs a workspace may hold, asked when its container is built: the GPU booking's
# answer (gpus/enforcement.py). Empty: workspaces get no GPU.
WORKSPACE_GPU_GRANTS = "gpus.enforcement.grant_for"
WORKSPACE_IMAGE = env_str("WORKSPACE_IMAGE", "portal/workspace:latest")
# Set by scripts/run-dev.sh when WORKSPACE_IMAGE is not on this machine's Docker engine and it
# could not build it: the command that does. The workspace card shows it (views never ask Docker).
WORKSPACE_IMAGE_BUILD_HINT = env_str("WORKSPACE_IMAGE_BUILD_HINT", "")
WORKSPACE_SSH_PORT_BASE = env_int("WORKSPACE_SSH_PORT_BASE", 2222, minimum=1024)
WORKSPACE_SSH_PORT_MAX = env_int("WORKSPACE_SSH_PORT_MAX", 2999, minimum=1024)
# Host paths mounted into containers; members' names are appended, nothing else ever is. They
# are the storage root's homes/, scratch/ and datasets/ (storage/layout.py) unless set apart.
WORKSPACE_HOME_ROOT = env_str("WORKSPACE_HOME_ROOT", f"{STORAGE_ROOT}/homes")
WORKSPACE_SCRATCH_ROOT = env_str("WORKSPACE_SCRATCH_ROOT", f"{STORAGE_ROOT}/scratch")
WORKSPACE_DATASETS_PATH = env_str("WORKSPACE_DATASETS_PATH", f"{STORAGE_ROOT}/datasets")
# Called on the worker before a workspace's folders are made, and when a workspace is removed
# with its data: the storage app makes (or deletes) the member's subvolumes. Empty: plain folders.
WORKSPACE_STORAGE_PREPARE = "storage.layout.prepare_member"
WORKSPACE_STORAGE_DELETE = "storage.layout.delete_member_data"
# --- Placement: which GPU server a member works on (workspaces/placement.py) ---------------
# Functions (member, host) -> refusal or None, asked before an admin moves a member to another
# server, beside the workspaces' own check (no workspace left on the old server).
WORKSPACE_PLACEMENT_CHECKS = ["gpus.placement.bookings_elsewhere"]
# Each member's containers get a bridge network of their own ("<prefix>-<username>"), so no
# member's container can reach another's code-server or Jupyter; Traefik and guacd (containers
# labelled portal.proxy=true) are joined to each one. Subnets are cut from this pool.
WORKSPACE_NETWORK_PREFIX = env_str("WORKSPACE_NETWORK_PREFIX", "portal-ws")
WORKSPACE_SUBNET_POOL = str(env_networks("WORKSPACE_SUBNET_POOL", ["10.213.0.0/16"])[0])
WORKSPACE_SUBNET_PREFIX = env_int("WORKSPACE_SUBNET_PREFIX", 28, minimum=16)
if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,30}", WORKSPACE_NETWORK_PREFIX):
    raise ImproperlyConfigured("WORKSPACE_NETWORK_PREFIX must be 1-31 lowercase letters, digits, '_', '.' or '-'")
if not int(WORKSPACE_SUBNET_POOL.split("/")[1]) < WORKSPACE_SUBNET_PREFIX <= 29:
    raise ImproperlyConfigured(
        f"WORKSPACE_SUBNET_PREFIX must be longer than WORKSPACE_SUBNET_POOL's /{WORKSPACE_SUBNET_POOL.split('/')[1]}"
        " and at most 29 (a network needs room for a workspace, Traefik and guacd)"
    )
# Docker inside a workspace needs a runtime that makes an unprivileged container able to run
# its own dockerd (Sysbox: "sysbox-runc"). Empty: admins can't grant that capability.
WORKSPACE_DOCKER_RUNTIME = env_str("WORKSPACE_DOCKER_RUNTIME", "")
if WORKSPACE_DOCKER_RUNTIME and not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", WORKSPACE_DOCKER_RUNTIME):
    raise ImproperlyConfigured(f"WORKSPACE_DOCKER_RUNTIME {WORKSPACE_DOCKER_RUNTIME!r} is not a runtime name")
WORKSPACE_PIDS_LIMIT = env_int("WORKSPACE_PIDS_LIMIT", 4096, minimum=64)
WORKSPACE_SHM_SIZE = env_size("WORKSPACE_SHM_SIZE", "8G")
WORKSPACE_START_TIMEOUT = env_int("WORKSPACE_START_TIMEOUT", 120, minimum=10)
WORKSPACE_IDLE_HOURS = env_int("WORKSPACE_IDLE_HOURS", 0, minimum=0)  # initial value of the idle policy
WORKSPACE_IDLE_CHECK_SECONDS = 300  # between two idle checks of a host (the Policies page says so)
# A workspace using at least this much CPU (percent of one core) is busy, not idle.
WORKSPACE_BUSY_CPU_PERCENT = env_int("WORKSPACE_BUSY_CPU_PERCENT", 10, minimum=1)
# Each minute's CPU, memory and network reading of the running workspaces (workspaces/activity.py):
# one engine call per container, in parallel, each given WORKSPACE_STATS_TIMEOUT seconds and all
# of them WORKSPACE_STATS_DEADLINE; a late container is left out of that minute. The reading is
# handed to these functions (the monitoring app writes it as series for the charts).
WORKSPACE_STATS_TIMEOUT = env_int("WORKSPACE_STATS_TIMEOUT", 10, minimum=2)
WORKSPACE_STATS_DEADLINE = env_int("WORKSPACE_STATS_DEADLINE", 20, minimum=WORKSPACE_STATS_TIMEOUT)
if WORKSPACE_STATS_DEADLINE > 45:
    raise ImproperlyConfigured("WORKSPACE_STATS_DEADLINE must be at most 45 seconds: the reading runs every minute")
WORKSPACE_STATS_RECEIVERS = ["monitoring.workspace_stats.workspace_stats_record"]
# The URL name (taking the workspace id) the workspace card fetches its figures over time from.
WORKSPACE_CARD_FIGURES = "monitoring:workspace-figures"
TRAEFIK_AUTH_MIDDLEWARE = env_str("TRAEFIK_AUTH_MIDDLEWARE", "portal-auth@file")
TRAEFIK_ENTRYPOINT = env_str("TRAEFIK_ENTRYPOINT", "websecure")
# The Desktop link: Guacamole's address (the dashboard's Guacamole link unless set), and the
# JSON_SECRET_KEY it runs with, which lets the portal sign members straight into their own
# desktop (guacamole-auth-json). Empty: the link opens Guacamole's own login page.
GUACAMOLE_URL = env_str("GUACAMOLE_URL", os.environ.get("LINK_GUACAMOLE") or f"https://remote.{PORTAL_DOMAIN}")
GUACAMOLE_URL = GUACAMOLE_URL.rstrip("/")
if not GUACAMOLE_URL.startswith(("https://", "http://")):
    raise ImproperlyConfigured(f"GUACAMOLE_URL must start with https:// or http://, got {GUACAMOLE_URL!r}")
GUACAMOLE_JSON_SECRET_KEY = env_str("GUACAMOLE_JSON_SECRET_KEY", "")
if GUACAMOLE_JSON_SECRET_KEY and not re.fullmatch(r"[0-9a-fA-F]{32}", GUACAMOLE_JSON_SECRET_KEY):
    # The value is a secret: the message names the variable, never echoes it.
    raise ImproperlyConfigured("GUACAMOLE_JSON_SECRET_KEY must be 32 hex digits (openssl rand -hex 16)")


# --- GPUs (gpus/) ---------------------------------------------------------------------------
# Each host's worker reads its GPUs through NVML. Where no NVIDIA driver is present (a laptop,
# a test machine) the GPUs can be declared instead, as "index:name:memory[:GPU-uuid]" entries
# separated by commas or semicolons: GPU_INVENTORY="0:RTX 5080:16G" (UUIDs from nvidia-smi -L).
# Such GPUs can be booked, but the portal can't see their use: no samples, no idle release.
# GPU_INVENTORY is the local host's; another host's is GPU_INVENTORY_<its name, uppercased,
# "-" as "_">, e.g. GPU_INVENTORY_GPU_2 for the host "gpu-2".
def _gpu_inventory(name: str) -> str:
    text = env_str(name, "")
    try:
        parse_inventory_config(text)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from exc
    return text


GPU_INVENTORY = _gpu_inventory("GPU_INVENTORY")
GPU_INVENTORY_HOSTS = {
    variable.removeprefix("GPU_INVENTORY_").lower().replace("_", "-"): _gpu_inventory(variable)
    for variable in sorted(os.environ)
    if variable.startswith("GPU_INVENTORY_") and not variable.endswith("_FILE")
}
# The host's /proc as the worker sees it. GPU processes are found by PID (NVML gives host PIDs)
# and mapped to their workspace through /proc/<pid>/cgroup, so the worker's container must
# share the host's PID namespace (compose: `pid: host`) or mount the host's /proc here
# (`/proc:/host/proc:ro` and HOST_PROC=/host/proc). Otherwise every GPU process counts as
# "other" and GPU use does not keep a workspace from the idle stop.
HOST_PROC = env_str("HOST_PROC", "/proc")
GPU_SAMPLE_DAYS = env_int("GPU_SAMPLE_DAYS", 90, minimum=1)  # one sample per GPU a minute is kept this long

# --- monitoring (monitoring/) ---------------------------------------------------------------
# The filesystems whose use is sampled each minute, each named by a path on it (as the worker
# sees it). A path that is not there, or on the same filesystem as an earlier one, is left out.
MONITORING_DISK_PATHS = env_list("MONITORING_DISK_PATHS", ["/", STORAGE_ROOT])
for _path in MONITORING_DISK_PATHS:
    if not _path.startswith("/"):
        raise ImproperlyConfigured(f"MONITORING_DISK_PATHS: {_path!r} is not an absolute path")
# Disks whose SMART health (verdict, temperature, reallocated sectors, NVMe media errors) is read
# each minute with smartctl, as /dev/sdX, /dev/nvmeN or /dev/disk/by-id/... paths. Empty: the
# disks `smartctl --scan` finds (none where smartmontools is not installed); "off": none.
MONITORING_SMART_DEVICES = env_list("MONITORING_SMART_DEVICES", [])
for _device in MONITORING_SMART_DEVICES:
    if MONITORING_SMART_DEVICES != ["off"] and not SMART_DEVICE.fullmatch(_device):
        raise ImproperlyConfigured(
            f"MONITORING_SMART_DEVICES: {_device!r} is not a disk (/dev/sdX, /dev/nvmeN, /dev/disk/by-id/...)"
        )

# --- Prometheus' /metrics (monitoring/metrics.py) -------------------------------------------
# The bearer token Prometheus sends (METRICS_TOKEN, or METRICS_TOKEN_FILE=/run/secrets/...).
# Unset: /metrics answers 403 to everyone; it is never open.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
if METRICS_TOKEN and len(METRICS_TOKEN) < 32:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 32 characters (openssl rand -hex 32 makes one)")
