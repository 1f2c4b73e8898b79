"""The host's figures over time: one compact table of (series, resolution, at, value) rows.

A series is a dotted name ("host.cpu.percent", "host.mem.used_bytes",
"host.psi.memory.some10", "disk.srv.used_bytes"). The worker writes one raw row per series a
minute (monitoring/collect.py); rollups (monitoring/rollup.py) average them into 5-minute and
hourly rows, each kept for its own time. A figure the host does not have is no row at all,
never a zero, so a chart shows a gap and not a drop. GPUs are not here: the gpus app samples
them (gpus.models.GpuSample) and the charts read its rows."""

from __future__ import annotations

import re
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models

SERIES_MAX_LENGTH = 64
# Lowercase words of letters, digits and "_", joined by dots, two to five of them.
SERIES_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9][a-z0-9_]*){1,4}")


def series_problem(name: str) -> str | None:
    """Why ``name`` can't be a series name, or None when it can."""
    if len(name) > SERIES_MAX_LENGTH:
        return f"a series name is at most {SERIES_MAX_LENGTH} characters, {name[:80]!r} is {len(name)}"
    if not SERIES_NAME.fullmatch(name):
        return f"{name[:80]!r} is not a series name (lowercase words joined by dots, like host.cpu.percent)"
    return None


def validate_series(name: str) -> None:
    problem = series_problem(name)
    if problem:
        raise ValidationError(problem)


class Resolution(models.IntegerChoices):
    """How much time one row stands for, in seconds (the value is the bucket's width)."""

    RAW = 60, "one a minute"
    FIVE_MINUTES = 300, "5-minute averages"
    HOUR = 3600, "hourly averages"

    @property
    def step(self) -> timedelta:
        return timedelta(seconds=self.value)

    @property
    def keep(self) -> timedelta:
        """How long rows of this resolution are kept (monitoring.rollup.samples_prune)."""
        return KEEP[self]


KEEP = {
    Resolution.RAW: timedelta(hours=48),
    Resolution.FIVE_MINUTES: timedelta(days=30),
    Resolution.HOUR: timedelta(days=365),
}


class Sample(models.Model):
    """One figure of one series: a minute's reading (raw), or the average of a bucket's raw
    readings (5 minutes, 1 hour) stamped with the bucket's start."""

    series = models.CharField(max_length=SERIES_MAX_LENGTH, validators=[validate_series])
    resolution = models.PositiveIntegerField(choices=Resolution.choices, default=Resolution.RAW)
    at = models.DateTimeField()
    value = models.FloatField()

    class Meta:
        constraints = [
            # One row per series and bucket: a rollup run twice writes nothing the second time
            # (ON CONFLICT DO NOTHING). Its index also serves reading a series over a range.
            models.UniqueConstraint(fields=["series", "resolution", "at"], name="monitoring_sample_one_per_bucket"),
        ]
        # Rollups and pruning read one resolution over a range of time, across all series.
        indexes = [models.Index(fields=["resolution", "at"], name="monitoring_sample_res_at")]

    def __str__(self) -> str:
        return f"{self.series} at {self.at:%Y-%m-%d %H:%M} ({self.get_resolution_display()}): {self.value:g}"
