# The portal's own image: web (gunicorn), Celery worker and beat all run from it.
# Build: docker compose build   (optional CA bundle for TLS-intercepting proxies:
#   docker build --secret id=cabundle,src=/etc/ssl/certs/ca-certificates.crt .)
# Needs BuildKit (RUN --mount). No "# syntax=" line: the builder's built-in frontend has
# --mount, and an offline builder could not pull a frontend image.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-client rclone btrfs-progs smartmontools \
 && rm -rf /var/lib/apt/lists/*
# restic 0.18 from Debian 13: Debian 12's 0.14 lacks forget's "oldest snapshot" rule and the JSON
# the offsite tier reads (backups/checks.py warns at startup about a restic older than 0.16).
# The one .deb comes from the same Debian mirror through apt (checked against trixie's signed
# Release) and is unpacked, not installed: nothing else of trixie enters the image.
COPY scripts/restic-trixie.sh scripts/trixie-unpack.sh /tmp/
RUN /tmp/restic-trixie.sh /tmp/restic \
 && install -m 0755 /tmp/restic/usr/bin/restic /usr/local/bin/restic \
 && rm -rf /tmp/restic /tmp/restic-trixie.sh /tmp/trixie-unpack.sh /etc/apt/portal-trixie.list /var/lib/apt/portal-trixie-lists \
 && restic version
WORKDIR /app
COPY requirements.txt .
RUN --mount=type=secret,id=cabundle,required=false \
    if [ -s /run/secrets/cabundle ]; then export PIP_CERT=/run/secrets/cabundle; fi; \
    pip install --no-cache-dir -r requirements.txt
COPY . .
# collectstatic needs settings that import cleanly; no secret is used at build time.
RUN SECRET_KEY=build-only GOOGLE_CLIENT_ID=x GOOGLE_CLIENT_SECRET=x GATE_FORWARD_AUTH_KEY=x \
    python manage.py collectstatic --noinput
RUN useradd --system --uid 999 --home /app portal && mkdir -p /app/var && chown portal /app/var
USER portal
EXPOSE 8000
# One gunicorn worker process with 8 threads: a small team makes few requests at once and each
# mostly waits on PostgreSQL, so threads serve them; every further process costs ~60 MiB idle
# (bench/footprint.py). More processes: set WEB_CONCURRENCY (gunicorn's default for --workers).
CMD ["gunicorn", "project.wsgi:application", "--bind", "0.0.0.0:8000", "--threads", "8", \
     "--worker-class", "gthread", "--access-logfile", "-", "--forwarded-allow-ips", "*"]
