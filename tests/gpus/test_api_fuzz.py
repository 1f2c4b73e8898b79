"""Arbitrary JSON bodies and query strings at every endpoint of the API: the answer is always
2xx or 4xx with a JSON body, never a 500. Each example runs in a savepoint that is rolled
back, so one example's booking never changes the next one's ground."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpus.models import GPU, Booking
from gpus.services import booking_create
from portal.models import Host, User
from tests.gpus.apiclient import API, ApiClient, api_client
from tests.gpus.conftest import next_slot

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FIELDS = ["host", "gpus", "gpu_indexes", "start", "end", "hours", "shared", "note", "minutes"]


def _moments() -> st.SearchStrategy[str]:
    """Times a script might send: on and off the grid, with and without offsets, odd years."""
    aware = st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
    naive = st.datetimes().map(lambda d: d.isoformat())
    soon = st.integers(-48, 24 * 40).map(lambda h: next_slot(1) + timedelta(hours=h)).map(lambda d: d.isoformat())
    return st.one_of(aware, naive, soon, st.text(max_size=30))


# Strings that broke APIs before: NUL (PostgreSQL refuses it), a lone surrogate (not UTF-8).
odd_strings = st.sampled_from(["", "local", "a\x00b", "\ud800", "0", "1e400", "null", "Z", " ", "\u202e"])
scalars = st.one_of(
    st.none(),
    odd_strings,
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    _moments(),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# Nearly right bookings, so that many examples get past the checks into the service.
nearly_right = st.fixed_dictionaries(
    {"hours": st.one_of(st.integers(-1, 5), st.floats(0, 6))},
    optional={
        "gpus": st.integers(-1, 3),
        "gpu_indexes": st.lists(st.integers(-1, 3), max_size=3),
        "start": _moments(),
        "shared": st.booleans(),
        "note": st.one_of(st.text(max_size=220), odd_strings),
        "host": st.one_of(odd_strings, st.text(max_size=70)),
    },
)
bodies = st.one_of(
    nearly_right,
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6),
    st.dictionaries(st.sampled_from(FIELDS), scalars, max_size=6),
    json_values,
)
queries = st.dictionaries(
    st.one_of(st.sampled_from(["mine", "from", "to", "host"]), st.text(max_size=8)),
    st.one_of(st.text(max_size=30), _moments(), st.sampled_from(["1", "0", "local", "true"])),
    max_size=4,
)


class _Undo(Exception):
    pass


@contextmanager
def rolled_back() -> Iterator[None]:
    try:
        with transaction.atomic():
            yield
            raise _Undo
    except _Undo:
        pass


@pytest.fixture
def client(alice: User, gpus: list[GPU]) -> ApiClient:
    alice.quota.max_gpus = 2
    alice.quota.save()
    return api_client(alice)


def _fresh_booking(user: User) -> Booking:
    start = next_slot(30)
    return booking_create(user=user, host=Host.local(), start=start, end=start + timedelta(hours=2), actor=user)


def _assert_answered(response: Any) -> None:
    assert 200 <= response.status_code < 300 or 400 <= response.status_code < 500, response.content[:300]
    assert isinstance(json.loads(response.content), dict)


@given(body=bodies)
@settings(FUZZ, max_examples=300)
def test_creating_a_booking_never_fails_with_a_500(client: ApiClient, body: Any) -> None:
    with rolled_back():
        _assert_answered(client.send("post", "/bookings", body))


@pytest.mark.parametrize(
    ("path", "method"),
    [("", "patch"), ("", "delete"), ("/extend", "post"), ("/release", "post")],
)
@given(body=bodies)
@FUZZ
def test_changing_a_booking_never_fails_with_a_500(
    client: ApiClient, alice: User, path: str, method: str, body: Any
) -> None:
    with rolled_back():
        booking = _fresh_booking(alice)
        _assert_answered(client.send(method, f"/bookings/{booking.pk}{path}", body))


@pytest.mark.parametrize("path", ["/gpus", "/bookings", "/bookings/{pk}"])
@given(query=queries)
@FUZZ
def test_reading_never_fails_with_a_500(client: ApiClient, alice: User, path: str, query: dict[str, str]) -> None:
    with rolled_back():
        booking = _fresh_booking(alice)
        _assert_answered(client.get(API + path.format(pk=booking.pk), query))


@given(data=st.binary(max_size=200), content_type=st.sampled_from(["application/json", "text/plain", ""]))
@FUZZ
def test_raw_bytes_as_a_body_never_fail_with_a_500(client: ApiClient, data: bytes, content_type: str) -> None:
    with rolled_back():
        _assert_answered(client.generic("POST", API + "/bookings", data, content_type=content_type))
