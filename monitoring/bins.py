"""Time buckets, in SQL and in Python alike: a bucket of width w starts at a multiple of w
counted from the Unix epoch (UTC), so the database's buckets and the page's grid agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import NotSupportedError
from django.db.models import DateTimeField, Expression, Func
from django.db.models.sql.compiler import SQLCompiler

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor(moment: datetime, width: timedelta) -> datetime:
    """The start of the bucket that holds ``moment``."""
    return EPOCH + (moment - EPOCH) // width * width


class Bin(Func):
    """The start of the ``width``-long bucket holding a datetime column: PostgreSQL's date_bin,
    or the same arithmetic on Unix seconds on SQLite (`make run`)."""

    output_field = DateTimeField()

    def __init__(self, expression: Expression | str, width: timedelta) -> None:
        seconds = int(width.total_seconds())
        if seconds <= 0 or seconds != width.total_seconds():
            raise ValueError(f"a bucket is a whole number of seconds, not {width}")
        self.seconds = seconds
        super().__init__(expression)

    def as_sql(self, compiler: SQLCompiler, connection: Any, *args: Any, **extra: Any) -> Any:  # type: ignore[override]
        raise NotSupportedError(f"time buckets are written for PostgreSQL and SQLite, not {connection.vendor}")

    def as_postgresql(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            f"date_bin(make_interval(secs => %s), {sql}, TIMESTAMPTZ '1970-01-01 00:00:00+00')",
            [self.seconds, *params],
        )

    def as_sqlite(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        # '%%s' reaches SQLite as strftime's own '%s' (seconds since the epoch).
        return (
            f"datetime(CAST(strftime('%%s', {sql}) AS INTEGER) / %s * %s, 'unixepoch')",
            [*params, self.seconds, self.seconds],
        )
