"""Celery tasks of the storage app's ingestion area."""

from __future__ import annotations
