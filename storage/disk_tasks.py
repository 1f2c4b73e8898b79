"""Celery tasks of the storage app's disk area."""

from __future__ import annotations
