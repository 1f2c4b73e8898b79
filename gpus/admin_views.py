"""The admin GPUs page: each host's GPUs, where the inventory came from, their latest sample
and whose workspaces run on them; the enforcement switch and "Refresh now"."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib import messages
from django.db.models import OuterRef, Subquery
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from gpus import hosts
from gpus.admin_forms import EnforcementForm
from gpus.inventory import config_variable
from gpus.models import GPU, GpuHost, GpuSample
from portal.access import AuthedRequest, staff_required
from portal.audit import AuditContext
from portal.models import Host
from workspaces.models import Workspace


@dataclass
class GpuRow:
    gpu: GPU
    sample: GpuSample | None
    workspaces: list[Workspace]


@dataclass
class HostPanel:
    host: Host
    gpu_host: GpuHost | None
    form: EnforcementForm
    config_variable: str
    rows: list[GpuRow] = field(default_factory=list)


def _panels(bad_form: tuple[int, EnforcementForm] | None = None) -> list[HostPanel]:
    """Every host with its GPUs and their latest samples, in four queries however many rows."""
    panels = {}
    for host in Host.objects.select_related("gpu_host"):
        gpu_host = getattr(host, "gpu_host", None)
        mode = gpu_host.enforcement if gpu_host else GpuHost.Enforcement.ENFORCED
        fresh = EnforcementForm(initial={"mode": mode}, auto_id=_auto_id(host))
        form = bad_form[1] if bad_form and bad_form[0] == host.pk else fresh
        panels[host.pk] = HostPanel(host, gpu_host, form, config_variable(host))
    latest = GpuSample.objects.filter(gpu=OuterRef("pk")).order_by("-at", "-pk").values("pk")[:1]
    gpus = list(GPU.objects.annotate(latest_id=Subquery(latest)).order_by("host__name", "-present", "index"))
    samples = GpuSample.objects.in_bulk([gpu.latest_id for gpu in gpus if gpu.latest_id])  # type: ignore[attr-defined]
    ids = {pk for sample in samples.values() for pk in sample.workspaces}
    workspaces = Workspace.objects.select_related("owner").in_bulk(ids)
    for gpu in gpus:
        sample = samples.get(gpu.latest_id)  # type: ignore[attr-defined]
        on_gpu = [workspaces[pk] for pk in (sample.workspaces if sample else []) if pk in workspaces]
        panels[gpu.host_id].rows.append(GpuRow(gpu, sample, on_gpu))
    return list(panels.values())


def _auto_id(host: Host) -> str:
    return f"id_host{host.pk}_%s"  # one form per host on the page, each with its own element ids


def _page(request: AuthedRequest, *, bad_form: tuple[int, EnforcementForm] | None = None) -> HttpResponse:
    context = {"panels": _panels(bad_form)}
    return render(request, "gpus/admin_gpus.html", context, status=400 if bad_form else 200)


@staff_required
@require_GET
def gpu_admin(request: AuthedRequest) -> HttpResponse:
    return _page(request)


@staff_required
@require_POST
def gpu_host_enforcement(request: AuthedRequest, pk: int) -> HttpResponse:
    host = get_object_or_404(Host, pk=pk)
    form = EnforcementForm(request.POST, auto_id=_auto_id(host))
    if not form.is_valid():
        return _page(request, bad_form=(host.pk, form))
    gpu_host = hosts.gpu_host_set_enforcement(
        host=host, mode=form.cleaned_data["mode"], actor=request.user, context=AuditContext.of(request)
    )
    messages.success(request, f"{host}: {gpu_host.get_enforcement_display()}.")
    return redirect("gpus:admin-gpus")


@staff_required
@require_POST
def gpu_host_refresh(request: AuthedRequest, pk: int) -> HttpResponse:
    host = get_object_or_404(Host, pk=pk)
    try:
        hosts.gpu_host_refresh(host=host, actor=request.user, context=AuditContext.of(request))
    except hosts.GpuHostError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Asked {host}'s worker to read its GPUs again. Reload this page in a few seconds.")
    return redirect("gpus:admin-gpus")
