"""Celery tasks of the storage app's scrub area."""

from __future__ import annotations
