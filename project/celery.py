"""The Celery app. Host-side tasks are routed to their host's queue (see workspaces)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Every thread's current_app (gunicorn's threads, a test's threads): the core sends tasks
# through celery.current_app, by name, since it may not import this package.
app.set_default()
