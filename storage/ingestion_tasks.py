"""Celery tasks of the storage app's ingestion area. Thin: the run on this server's queue
(storage.ingestion.ingestion_execute), and beat's start of a scheduled job."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from storage import ingestion


@shared_task(acks_late=True, ignore_result=True)
def ingestion_run_task(operation_id: int, **_params: Any) -> None:
    ingestion.ingestion_execute(operation_id)


@shared_task(acks_late=True, ignore_result=True)
def ingestion_scheduled_task(job_id: int) -> None:
    """Beat (the job's PeriodicTask, args [job.pk]) starts a run, which goes to the host's queue."""
    ingestion.ingestion_scheduled(job_id)
