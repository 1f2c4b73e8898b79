"""The Cost page's figures: what the server costs a month against what renting the cloud
instances of the price table would have cost for the same use, and when the server has paid for
itself. Months are calendar months in the team's time zone (TIME_ZONE).

Measured, from what the portal records:

- workspace-hours: the count of running workspaces the worker writes each minute
  ("workspaces.running", monitoring.collect), from its hourly averages (kept a year) and, for
  the hours not rolled up yet, its raw minutes;
- GPU-hours: GPU bookings as held (not cancelled; one released early or as a no-show up to its
  release; never ahead of now), times their GPUs;
- the GPUs' power where NVML samples it (GpuSample.power_watts, kept GPU_SAMPLE_DAYS): all GPUs'
  draw averaged over the month's sampled minutes.

Configured (CostSettings, CloudInstance): the rest of the server's draw, the GPUs' draw in a
month without power samples, the price of a kWh, the hardware and its amortisation, internet,
other costs, and the cloud's prices. The month in progress is projected: its measured figures so
far scaled to the whole month.

Break-even is reckoned in cash: the hardware price against the sum, month by month, of the cloud
cost minus the server's running costs (power, internet, other). Amortisation is the hardware price
spread over months, so it is in the monthly comparison but not counted twice here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Count, Max, Sum
from django.db.models.functions import TruncMonth
from django.forms import BaseModelFormSet, ModelForm
from django.utils import timezone

from gpus.models import Booking, GpuSample
from gpus.services import overlap
from monitoring.collect import RUNNING_SERIES
from monitoring.models import CloudInstance, CostSettings, Resolution, Sample
from portal.audit import AuditContext, audit_record
from portal.models import User

LISTED_MONTHS = 60  # months before this one shown at most
HORIZON_MONTHS = 60  # a break-even further ahead is "not within 5 years"
RATE_MONTHS = 3  # the projection's pace: the mean cash savings of the last 3 months
FUTURE_POINTS = 12  # projected months the chart draws at most


@dataclass(frozen=True)
class Figure:
    """One figure and how it was got: ``measured`` from records, or configured."""

    value: float
    measured: bool
    note: str


@dataclass(frozen=True)
class Prices:
    """The cloud's price of a workspace-hour and of a GPU-hour, and the rows they come from."""

    workspace_hour: float
    workspace_row: CloudInstance
    gpu_hour: float
    gpu_row: CloudInstance


@dataclass
class Month:
    """One month's figures; the month in progress projected to its end (``elapsed`` < 1)."""

    start: datetime
    hours: float
    elapsed: float
    workspace_hours: Figure
    gpu_hours: Figure
    gpu_watts: Figure
    base_watts: float
    power: float
    amortisation: float
    internet: float
    other: float
    cloud: float
    cumulative: float = 0.0  # cash savings since the first month shown, up to now

    @property
    def current(self) -> bool:
        return self.elapsed < 1

    @property
    def kwh(self) -> float:
        return (self.base_watts + self.gpu_watts.value) * self.hours / 1000

    @property
    def running(self) -> float:
        return self.power + self.internet + self.other

    @property
    def server(self) -> float:
        return self.running + self.amortisation

    @property
    def savings(self) -> float:
        return self.cloud - self.server

    @property
    def cash_savings(self) -> float:
        return self.cloud - self.running


@dataclass(frozen=True)
class BreakEven:
    """When the cash savings reach the hardware price: ``paid`` (in ``month``), ``projected``
    (in ``month``, at ``rate`` a month), ``never`` (the server costs more to run than the cloud
    would) or ``beyond`` (more than HORIZON_MONTHS ahead)."""

    status: str
    month: datetime | None = None
    rate: float = 0.0
    months_left: int = 0


@dataclass
class CostReport:
    settings: CostSettings
    prices: Prices | None
    months: list[Month]
    break_even: BreakEven
    future: list[tuple[datetime, float]] = field(default_factory=list)  # projected cumulative savings

    @property
    def now(self) -> Month:
        return self.months[-1]


def month_start(moment: datetime) -> datetime:
    local = timezone.localtime(moment)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_months(start: datetime, count: int) -> datetime:
    """The first of the month ``count`` months after ``start`` (itself a first), at midnight local."""
    index = start.year * 12 + start.month - 1 + count
    naive = datetime(index // 12, index % 12 + 1, 1)  # noqa: DTZ001 (made aware on the next line)
    return timezone.make_aware(naive, timezone.get_current_timezone())


def months_between(earlier: date, later: date) -> int:
    return (later.year - earlier.year) * 12 + later.month - earlier.month


def cloud_prices(rows: Sequence[CloudInstance]) -> Prices | None:
    """The cheapest row without GPUs prices a workspace-hour; a GPU-hour is priced from the row
    whose price above that, per GPU, is lowest. None without a row of each kind."""
    plain = [row for row in rows if row.gpus == 0]
    with_gpus = [row for row in rows if row.gpus > 0]
    if not plain or not with_gpus:
        return None
    workspace = min(plain, key=lambda row: row.hourly_price)
    base = float(workspace.hourly_price)

    def per_gpu(row: CloudInstance) -> float:
        return max(0.0, (float(row.hourly_price) - base) / row.gpus)

    gpu = min(with_gpus, key=per_gpu)
    return Prices(base, workspace, per_gpu(gpu), gpu)


def cost_report(
    *, now: datetime | None = None, rows: Sequence[CloudInstance] | None = None, config: CostSettings | None = None
) -> CostReport:
    """Every month from the purchase (or the first with records, if later; LISTED_MONTHS at
    most) to this one, and the break-even. Six queries at most, however many months and rows."""
    moment = now or timezone.now()
    config = config or CostSettings.current()
    prices = cloud_prices(list(CloudInstance.objects.all()) if rows is None else rows)
    this_month = month_start(moment)
    bought = timezone.make_aware(datetime.combine(config.purchased.replace(day=1), datetime.min.time()))
    lo = min(max(bought, add_months(this_month, -LISTED_MONTHS)), this_month)  # a purchase ahead: this month
    hi = add_months(this_month, 1)
    tz = timezone.get_current_timezone()
    workspace = _workspace_hours(lo, hi, tz)
    gpu = _gpu_hours(lo, min(hi, moment))
    power = _gpu_watts(lo, hi, tz)
    first = min([*workspace, *gpu, this_month])
    months = []
    start = max(lo, first)
    while start <= this_month:
        end = add_months(start, 1)
        elapsed = 1.0 if end <= moment else (moment - start) / (end - start)
        months.append(_month(config, prices, start, end, elapsed, workspace, gpu, power))
        start = end
    break_even = _break_even(months, float(config.hardware_price))
    return CostReport(config, prices, months, break_even, _future(months, break_even, float(config.hardware_price)))


def _key(moment: datetime) -> datetime:
    return month_start(moment)


def _workspace_hours(lo: datetime, hi: datetime, tz: ZoneInfo | Any) -> dict[datetime, tuple[float, int]]:
    """Workspace-hours and sample count per month: hourly averages, then the raw minutes after
    the newest hourly row."""
    series = Sample.objects.filter(series=RUNNING_SERIES, at__lt=hi)
    hourly = (
        series.filter(resolution=Resolution.HOUR, at__gte=lo)
        .annotate(month=TruncMonth("at", tzinfo=tz))
        .values("month")
        .annotate(total=Sum("value"), count=Count("id"), last=Max("at"))
    )
    table: dict[datetime, tuple[float, int]] = {}
    tail = lo
    for row in hourly:
        table[_key(row["month"])] = (row["total"], row["count"] * 60)
        tail = max(tail, row["last"] + Resolution.HOUR.step)
    raw = (
        series.filter(resolution=Resolution.RAW, at__gte=tail)
        .annotate(month=TruncMonth("at", tzinfo=tz))
        .values("month")
        .annotate(total=Sum("value"), count=Count("id"))
    )
    for minute_row in raw:
        month = _key(minute_row["month"])
        hours, minutes = table.get(month, (0.0, 0))
        table[month] = (hours + minute_row["total"] / 60, minutes + minute_row["count"])
    return table


def _gpu_hours(lo: datetime, hi: datetime) -> dict[datetime, float]:
    """GPU-hours held per month, up to ``hi`` (now): bookings not cancelled, clipped."""
    table: dict[datetime, float] = {}
    held = (
        Booking.objects.filter(start__lt=hi, end__gt=lo)
        .exclude(state=Booking.State.CANCELLED)
        .values_list("start", "end", "gpu_count")
    )
    for start, end, gpus in held:
        month = _key(max(start, lo))
        while month < hi and month < end:
            following = add_months(month, 1)
            hours = overlap(start, end, month, min(following, hi)).total_seconds() / 3600
            table[month] = table.get(month, 0.0) + hours * gpus
            month = following
    return table


def _gpu_watts(lo: datetime, hi: datetime, tz: ZoneInfo | Any) -> dict[datetime, tuple[float, int]]:
    """Mean draw of all GPUs together per month, over the minutes NVML sampled, and how many."""
    rows = (
        GpuSample.objects.filter(at__gte=lo, at__lt=hi, power_watts__isnull=False)
        .annotate(month=TruncMonth("at", tzinfo=tz))
        .values("month")
        .annotate(watts=Sum("power_watts"), minutes=Count("at", distinct=True))
    )
    return {_key(row["month"]): (row["watts"] / row["minutes"], row["minutes"]) for row in rows}


def _month(
    config: CostSettings,
    prices: Prices | None,
    start: datetime,
    end: datetime,
    elapsed: float,
    workspace: dict[datetime, tuple[float, int]],
    gpu: dict[datetime, float],
    power: dict[datetime, tuple[float, int]],
) -> Month:
    hours = (end - start).total_seconds() / 3600
    scale = 1 / elapsed if 0 < elapsed < 1 else 1.0
    projected = " so far, projected to the month" if elapsed < 1 else ""
    ws_hours, minutes = workspace.get(start, (0.0, 0))
    ws = (
        Figure(ws_hours * scale, True, f"measured: running workspaces counted each minute{projected}")
        if minutes
        else Figure(0.0, False, "not measured: no count of running workspaces this month (was the worker down?)")
    )
    held = Figure(gpu.get(start, 0.0) * scale, True, f"measured: GPU bookings as held{projected}")
    if start in power:
        watts, sampled = power[start]
        gpu_watts = Figure(watts, True, f"measured: mean of {sampled:,} minutes of GPU power samples")
    else:
        gpu_watts = Figure(float(config.gpu_watts), False, "configured: no GPU power samples this month")
    kwh = (config.base_watts + gpu_watts.value) * hours / 1000
    in_amortisation = 0 <= months_between(config.purchased, start.date()) < config.amortisation_months
    cloud = 0.0 if prices is None else ws.value * prices.workspace_hour + held.value * prices.gpu_hour
    return Month(
        start=start,
        hours=hours,
        elapsed=elapsed,
        workspace_hours=ws,
        gpu_hours=held,
        gpu_watts=gpu_watts,
        base_watts=float(config.base_watts),
        power=kwh * float(config.kwh_price),
        amortisation=float(config.hardware_price) / config.amortisation_months if in_amortisation else 0.0,
        internet=float(config.internet_monthly),
        other=float(config.other_monthly),
        cloud=cloud,
    )


def _break_even(months: list[Month], hardware: float) -> BreakEven:
    cumulative = 0.0
    paid: datetime | None = None
    for month in months:
        cumulative += month.cash_savings * month.elapsed
        month.cumulative = cumulative
        if paid is None and cumulative >= hardware:
            paid = month.start
    if paid is not None:
        return BreakEven("paid", paid)
    current = months[-1]
    recent = months[-RATE_MONTHS:]
    rate = sum(month.cash_savings for month in recent) / len(recent)
    left = hardware - cumulative - current.cash_savings * (1 - current.elapsed)
    if left <= 0:
        return BreakEven("projected", current.start, rate, 0)
    if rate <= 0:
        return BreakEven("never", rate=rate)
    needed = math.ceil(left / rate)
    if needed > HORIZON_MONTHS:
        return BreakEven("beyond", rate=rate, months_left=needed)
    return BreakEven("projected", add_months(current.start, needed), rate, needed)


def _future(months: list[Month], break_even: BreakEven, hardware: float) -> list[tuple[datetime, float]]:
    """The cumulative savings the chart projects after this month, up to the break-even."""
    if break_even.status != "projected" or break_even.months_left == 0:
        return []
    current = months[-1]
    total = current.cumulative + current.cash_savings * (1 - current.elapsed)
    points = []
    for ahead in range(1, min(break_even.months_left, FUTURE_POINTS) + 1):
        total += break_even.rate
        points.append((add_months(current.start, ahead), min(total, hardware * 2)))
    return points


def chart_data(report: CostReport) -> dict[str, Any]:
    """What monitoring/cost.js draws: bars of cloud and server cost a month, the cumulative
    cash savings (projected ahead, dashed), the hardware price and the break-even's index."""
    labels = [f"{month.start:%b %Y}" + (" (so far)" if month.current else "") for month in report.months]
    labels += [f"{moment:%b %Y}" for moment, _ in report.future]
    past = len(report.months)
    marked = None
    if report.break_even.month is not None:
        starts = [month.start for month in report.months] + [moment for moment, _ in report.future]
        marked = starts.index(report.break_even.month) if report.break_even.month in starts else None
    return {
        "labels": labels,
        "currency": report.settings.currency,
        "cloud": [round(month.cloud, 2) for month in report.months],
        "server": [round(month.server, 2) for month in report.months],
        "cumulative": [round(month.cumulative, 2) for month in report.months] + [None] * len(report.future),
        "projected": [None] * (past - 1)
        + [round(report.now.cumulative, 2)]
        + [round(value, 2) for _, value in report.future]
        if report.future
        else [],
        "hardware": float(report.settings.hardware_price),
        "break_even": marked,
    }


# --- changes ------------------------------------------------------------------------------


def _text(value: object) -> str:
    return "" if value is None else str(value)


@transaction.atomic
def cost_settings_update(*, form: ModelForm[CostSettings], actor: User, context: AuditContext) -> CostSettings:
    """Save the settings of a valid form, with one audit row naming each change."""
    before = CostSettings.objects.select_for_update().get_or_create(pk=1)[0]
    changes = {
        name: [_text(getattr(before, name)), _text(form.cleaned_data[name])]
        for name in form.changed_data
        if _text(getattr(before, name)) != _text(form.cleaned_data[name])
    }
    row = form.save(commit=False)
    row.updated_by = actor
    row.save()
    audit_record(action="cost.settings", actor=actor, target=row, context=context, changes=changes)
    return row


@transaction.atomic
def cloud_prices_update(*, formset: BaseModelFormSet[CloudInstance, Any], actor: User, context: AuditContext) -> int:
    """Apply a valid price table's adds, edits and deletions together, one audit row each;
    returns how many rows changed."""
    changed = 0
    for form in formset.forms:
        if not form.has_changed():
            continue
        if form.cleaned_data.get("DELETE"):
            if form.instance.pk is not None:
                audit_record(action="cost.price_deleted", actor=actor, target=form.instance, context=context)
                form.instance.delete()
                changed += 1
            continue
        row = form.save()
        audit_record(
            action="cost.price_saved",
            actor=actor,
            target=row,
            context=context,
            gpus=row.gpus,
            hourly_price=str(row.hourly_price),
            fields=form.changed_data,
        )
        changed += 1
    return changed
