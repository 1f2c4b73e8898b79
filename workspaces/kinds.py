"""The one registry of workspace operation kinds: for each, the state the member asks for,
the worker's steps, the Celery task that runs it, and the checks it needs. Services, tasks,
the lifecycle and the views all read it; adding a kind means one entry here and one task."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import models

from workspaces import steps
from workspaces.models import Workspace


class WorkspaceOp(models.TextChoices):
    CREATE = "create", "Create"
    START = "start", "Start"
    STOP = "stop", "Stop"
    RESTART = "restart", "Restart"
    REBUILD = "rebuild", "Rebuild"
    REMOVE = "remove", "Remove"


@dataclass(frozen=True)
class Kind:
    desired: str  # Workspace.Desired after the request
    steps: Callable[[steps.Run], None]  # what the worker does
    task: str  # the Celery task's name (workspaces/tasks.py)
    brings_up: bool = False  # the owner must be allowed to run, and a failure gives up "running"
    on_card: bool = False  # a button on the workspace card (the workspaces:act URL)


def _task(kind: str) -> str:
    return f"workspaces.tasks.workspace_{kind}_task"


KINDS: dict[str, Kind] = {
    WorkspaceOp.CREATE: Kind(Workspace.Desired.RUNNING, steps.bring_up, _task("create"), brings_up=True),
    WorkspaceOp.START: Kind(Workspace.Desired.RUNNING, steps.bring_up, _task("start"), brings_up=True, on_card=True),
    WorkspaceOp.STOP: Kind(Workspace.Desired.STOPPED, steps.stop, _task("stop"), on_card=True),
    WorkspaceOp.RESTART: Kind(Workspace.Desired.RUNNING, steps.restart, _task("restart"), brings_up=True, on_card=True),
    WorkspaceOp.REBUILD: Kind(Workspace.Desired.RUNNING, steps.rebuild, _task("rebuild"), brings_up=True, on_card=True),
    WorkspaceOp.REMOVE: Kind(Workspace.Desired.ABSENT, steps.remove, _task("remove")),
}
