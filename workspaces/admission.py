"""Admission control: can this host honour the workspace's quota right now? Checked when a
member asks (so the refusal is immediate) and again by the worker just before it starts the
container (when the host's size may only then be known)."""

from __future__ import annotations

from django.db import models
from django.db.models import Sum

from portal.env import format_size
from portal.models import Host, Quota
from workspaces.models import Workspace


class WorkspaceError(Exception):
    """A refusal or failure with a message fit to show the member as is."""


class AdmissionRefused(WorkspaceError):
    """The host can't give the workspace what its quota promises."""


def memory_promised(*, host: Host, exclude: Workspace | None = None) -> int:
    """Bytes of memory guaranteed to the host's other running (or starting) workspaces."""
    holding = Workspace.objects.filter(host=host, state__in=Workspace.HOLDING_MEMORY)
    if exclude is not None:
        holding = holding.exclude(pk=exclude.pk)
    return holding.aggregate(total=Sum("owner__quota__mem_guarantee"))["total"] or 0


def hosts_with_promised_memory() -> list[Host]:
    """Every host with ``promised``: bytes guaranteed to its running workspaces (one query)."""
    holding = models.Q(workspaces__state__in=Workspace.HOLDING_MEMORY)
    promised = Sum("workspaces__owner__quota__mem_guarantee", filter=holding, default=0)
    return list(Host.objects.annotate(promised=promised).order_by("name"))


def cpuset_cpus(cpuset: str) -> list[int]:
    """'0-3,8' -> [0, 1, 2, 3, 8]; '' -> []."""
    cpus: list[int] = []
    for part in filter(None, cpuset.split(",")):
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def admission_problem(*, quota: Quota, host: Host, promised: int) -> str | None:
    """Why the host can't take the workspace now, in the member's words; None if it can.
    Unknown host sizes (never read from the engine yet) are not held against the member."""
    if host.memory_bytes is not None and quota.mem_guarantee > host.memory_bytes:
        return (
            f"The server can't guarantee {format_size(quota.mem_guarantee)} of memory: it has "
            f"{format_size(host.memory_bytes)} in all. Ask an admin to lower your guarantee."
        )
    if host.memory_bytes is not None and promised + quota.mem_guarantee > host.memory_bytes:
        return (
            f"The server can't guarantee {format_size(quota.mem_guarantee)} of memory right now: "
            f"{format_size(promised)} of {format_size(host.memory_bytes)} are promised to other "
            "running workspaces. Try again when someone stops theirs, or ask an admin."
        )
    cpus = cpuset_cpus(quota.cpuset)
    if host.cpu_count is not None and cpus and max(cpus) >= host.cpu_count:
        return (
            f"Your CPU set {quota.cpuset} names CPUs this server doesn't have "
            f"(it has {host.cpu_count}: 0-{host.cpu_count - 1}). Ask an admin to fix your quota."
        )
    return None


def admission_check(*, workspace: Workspace) -> None:
    """Raise AdmissionRefused unless the workspace's host can take it now."""
    problem = admission_problem(
        quota=workspace.owner.quota,
        host=workspace.host,
        promised=memory_promised(host=workspace.host, exclude=workspace),
    )
    if problem:
        raise AdmissionRefused(problem)
