"""The Cost page: the monthly arithmetic against hand-computed figures, measured against
configured power, the break-even in each of its four cases, the forms' refusals (nothing
half-saved), audit rows, admins only, and a fixed number of queries however much data."""

from __future__ import annotations

import importlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django.fixtures import DjangoAssertNumQueries

from gpus.models import GPU, Booking, GpuSample
from monitoring import costs
from monitoring.collect import RUNNING_SERIES, host_sample
from monitoring.models import CloudInstance, CostSettings, Resolution, Sample
from portal.models import AuditEvent, Host, User
from tests.factories import UserFactory
from tests.monitoring.conftest import make_rows
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db
URL = reverse("monitoring:cost")
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)  # 14.5 of March's 31 days gone
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MARCH = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def config() -> CostSettings:
    """Round figures: 3,600 over 36 months is 100 a month; 400 W configured all month."""
    CostSettings.current()  # the migration's row (a transactional test elsewhere may have flushed it)
    CostSettings.objects.filter(pk=1).update(
        hardware_price=Decimal(3600),
        purchased=date(2026, 1, 10),
        amortisation_months=36,
        base_watts=100,
        gpu_watts=300,
        kwh_price=Decimal("0.25"),
        internet_monthly=Decimal(50),
        other_monthly=Decimal(10),
        currency="EUR",
    )
    CloudInstance.objects.all().delete()
    CloudInstance.objects.create(name="plain", gpus=0, hourly_price=Decimal("0.10"))
    CloudInstance.objects.create(name="dearer plain", gpus=0, hourly_price=Decimal("0.30"))
    CloudInstance.objects.create(name="one GPU", gpus=1, hourly_price=Decimal("0.60"))  # 0.50 a GPU-hour
    CloudInstance.objects.create(name="four GPUs", gpus=4, hourly_price=Decimal("2.50"))  # 0.60 a GPU-hour
    return CostSettings.current()


def _book(user: User, start: datetime, hours: float, *, gpus: int = 1, state: str = Booking.State.COMPLETED) -> None:
    Booking.objects.create(
        user=user, host=Host.local(), start=start, end=start + timedelta(hours=hours), gpu_count=gpus, state=state
    )


@pytest.fixture
def february(config: CostSettings) -> None:
    """February 2026 (672 hours): 200 workspace-hours (2 running for 100 hours), 22 GPU-hours
    (2 GPUs for 10 hours, and 2 of a booking across the month's start), a cancelled booking."""
    make_rows(RUNNING_SERIES, start=FEB + timedelta(days=3), end=FEB + timedelta(days=3, hours=100),
              resolution=Resolution.HOUR, value=lambda at: 2.0)  # fmt: skip
    alice = UserFactory(username="alice")
    _book(alice, FEB + timedelta(days=5), 10, gpus=2)
    _book(alice, FEB - timedelta(hours=2), 4)
    _book(alice, FEB + timedelta(days=9), 50, gpus=4, state=Booking.State.CANCELLED)


def _month(report: costs.CostReport, start: datetime) -> costs.Month:
    return next(month for month in report.months if month.start == start)


def test_a_past_month_costs_what_the_hand_computation_says(february: None) -> None:
    report = costs.cost_report(now=NOW)
    feb = _month(report, FEB)
    assert feb.hours == 672
    assert feb.elapsed == 1
    assert feb.workspace_hours.value == pytest.approx(200)
    assert feb.workspace_hours.measured
    assert feb.gpu_hours.value == pytest.approx(22)
    assert feb.gpu_hours.measured
    assert report.prices is not None
    assert (report.prices.workspace_row.name, report.prices.gpu_row.name) == ("plain", "one GPU")
    assert feb.cloud == pytest.approx(200 * 0.10 + 22 * 0.50)  # 31
    assert not feb.gpu_watts.measured
    assert feb.gpu_watts.note.startswith("configured")
    assert feb.power == pytest.approx(400 * 672 / 1000 * 0.25)  # 67.20
    assert feb.amortisation == pytest.approx(100)
    assert feb.server == pytest.approx(67.2 + 100 + 50 + 10)
    assert feb.savings == pytest.approx(31 - 227.2)
    assert feb.cash_savings == pytest.approx(31 - 127.2)
    jan = _month(report, datetime(2026, 1, 1, tzinfo=UTC))
    assert jan.gpu_hours.value == pytest.approx(2)  # the first half of the booking across the month
    assert not jan.workspace_hours.measured  # no count of running workspaces in January
    assert [month.start.month for month in report.months] == [1, 2, 3]


def test_measured_gpu_power_replaces_the_configured_figure_for_its_month(february: None) -> None:
    gpus = [GPU.objects.create(host=Host.local(), index=i, name="RTX 5080") for i in range(2)]
    for minute, (first, second) in enumerate([(200, 50), (220, 30), (180, None)]):
        at = FEB + timedelta(days=4, minutes=minute)
        GpuSample.objects.create(gpu=gpus[0], at=at, utilization=50, memory_used=0, power_watts=first)
        GpuSample.objects.create(gpu=gpus[1], at=at, utilization=0, memory_used=0, power_watts=second)
    feb = _month(costs.cost_report(now=NOW), FEB)
    assert feb.gpu_watts.measured
    assert feb.gpu_watts.value == pytest.approx((250 + 250 + 180) / 3)
    assert feb.gpu_watts.note == "measured: mean of 3 minutes of GPU power samples"
    assert feb.power == pytest.approx((100 + 680 / 3) * 672 / 1000 * 0.25)


def test_the_month_in_progress_is_projected_from_hourly_and_newer_raw_minutes(config: CostSettings) -> None:
    make_rows(RUNNING_SERIES, start=MARCH, end=MARCH + timedelta(hours=3), resolution=Resolution.HOUR)
    # A raw minute the hourly rows already hold is not counted again; the hour after them is.
    make_rows(RUNNING_SERIES, start=MARCH + timedelta(minutes=30), end=MARCH + timedelta(minutes=31),
              value=lambda at: 99.0)  # fmt: skip
    make_rows(RUNNING_SERIES, start=NOW - timedelta(hours=1), end=NOW, value=lambda at: 2.0)
    _book(UserFactory(), NOW - timedelta(hours=5), 10, gpus=1, state=Booking.State.ACTIVE)  # 5 hours so far
    march = costs.cost_report(now=NOW).now
    elapsed = 14.5 / 31
    assert march.current
    assert march.elapsed == pytest.approx(elapsed)
    assert march.workspace_hours.value == pytest.approx((3 + 2) / elapsed)
    assert march.gpu_hours.value == pytest.approx(5 / elapsed)
    assert "projected" in march.workspace_hours.note
    assert march.cloud == pytest.approx((5 * 0.10 + 5 * 0.50) / elapsed)


def test_amortisation_stops_once_the_server_is_written_off(config: CostSettings) -> None:
    CostSettings.objects.filter(pk=1).update(purchased=date(2026, 1, 31), amortisation_months=2)
    _book(UserFactory(), datetime(2026, 1, 31, 20, tzinfo=UTC), 1)  # records from January on
    months = costs.cost_report(now=NOW).months
    assert [month.amortisation for month in months] == [pytest.approx(1800), pytest.approx(1800), 0.0]


def test_the_seeded_defaults_reproduce_the_plans_3650_a_month_and_break_even_under_1_5_months() -> None:
    """Five members with a GPU workspace all month (5 x 730 hours) would rent 3,650 a month."""
    from django.apps import apps

    CostSettings.objects.all().delete()
    CloudInstance.objects.all().delete()
    importlib.import_module("monitoring.migrations.0002_cost").seed(apps, None)
    prices = costs.cloud_prices(list(CloudInstance.objects.all()))
    assert prices is not None
    assert 3650 * prices.workspace_hour + 3650 * prices.gpu_hour == pytest.approx(3650)
    config = CostSettings.current()
    assert float(config.hardware_price) / 3650 < 1.5
    assert (config.amortisation_months, config.base_watts, config.gpu_watts) == (36, 150, 360)


def _months(*cash: float) -> list[costs.Month]:
    """Months with only a cloud cost, so each one's cash savings is that figure; the last one
    half gone."""
    months = []
    for index, value in enumerate(cash):
        start = costs.add_months(FEB, index)
        zero = costs.Figure(0, True, "")
        months.append(
            costs.Month(start, 720, 0.5 if index == len(cash) - 1 else 1.0, zero, zero, zero, 0, 0, 0, 0, 0, value)
        )
    return months


def test_the_break_even_is_the_month_the_savings_pass_the_hardware_price() -> None:
    months = _months(400, 700, 100)
    assert costs._break_even(months, 1000) == costs.BreakEven("paid", months[1].start)
    assert [month.cumulative for month in months] == [400, 1100, 1150]


def test_a_break_even_ahead_is_projected_at_the_last_three_months_pace() -> None:
    months = _months(100, 200, 300, 400)  # 800 so far with half of the last month; 200 more by its end
    be = costs._break_even(months, 2000)
    assert be.rate == pytest.approx(300)
    assert be.months_left == 4
    assert be == costs.BreakEven("projected", costs.add_months(months[-1].start, 4), 300, 4)
    assert costs._break_even(_months(100, 300), 250).months_left == 0  # reached by this month's end


def test_a_server_that_costs_more_than_the_cloud_never_breaks_even_and_a_slow_one_not_within_5_years() -> None:
    assert costs._break_even(_months(-50, 10), 1000).status == "never"
    slow = costs._break_even(_months(10, 10), 1000)
    assert (slow.status, slow.months_left) == ("beyond", 98)  # 985 left after this month, at 10 a month


def test_the_running_workspaces_are_counted_with_each_minute_sample(settings: object) -> None:
    alice = UserFactory(username="alice")
    for name, port, state in [("", 2301, "running"), ("b", 2302, "running"), ("c", 2303, "stopped")]:
        Workspace.objects.create(owner=alice, name=name, slug=f"alice{name}", host=Host.local(), ssh_port=port,
                                 state=state)  # fmt: skip
    host_sample(disk_paths=[])
    assert Sample.objects.get(series=RUNNING_SERIES).value == 2.0


# --- the page ------------------------------------------------------------------------------


def test_an_admin_sees_the_figures_each_labelled_and_the_chart_data(
    admin_client: Client, february: None, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    _book(UserFactory(), timezone.now() - timedelta(days=40), 30, gpus=2)
    with django_assert_num_queries(8):  # session, user, settings, prices, 2 workspace, bookings, power
        response = admin_client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    for words in ["Server per month", "Cloud per month", "Break-even", "measured", "configured",
                  "CPU, disks and fans are not measured", "no GPU power samples this month", "EUR"]:  # fmt: skip
        assert words in html
    data = response.context["data"]
    assert len(data["labels"]) >= 2
    assert data["hardware"] == 3600.0
    assert len(data["cloud"]) == len(data["server"]) == len(response.context["report"].months)


def test_a_member_can_neither_see_nor_change_the_costs(client: Client, config: CostSettings) -> None:
    client.force_login(UserFactory())
    assert client.get(URL).status_code == 403
    response = client.post(URL, {"save_settings": "1", **_settings_post(hardware_price="1")})
    assert response.status_code == 403
    assert CostSettings.current().hardware_price == Decimal(3600)


def _settings_post(**changes: str) -> dict[str, str]:
    fields = {
        "currency": "EUR",
        "hardware_price": "3600",
        "purchased": "2026-01-10",
        "amortisation_months": "36",
        "base_watts": "100",
        "gpu_watts": "300",
        "kwh_price": "0.25",
        "internet_monthly": "50",
        "other_monthly": "10",
    }
    return {**fields, **changes}


def test_saving_the_settings_audits_each_change(admin_client: Client, admin_user: User, config: CostSettings) -> None:
    response = admin_client.post(URL, {"save_settings": "1", **_settings_post(hardware_price="4200", gpu_watts="450")})
    assert response.status_code == 302
    row = CostSettings.current()
    assert (row.hardware_price, row.gpu_watts, row.updated_by) == (Decimal(4200), 450, admin_user)
    event = AuditEvent.objects.get(action="cost.settings")
    assert event.detail["changes"] == {"hardware_price": ["3600.00", "4200"], "gpu_watts": ["300", "450"]}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("hardware_price", "-1", "A price can&#x27;t be negative."),
        ("kwh_price", "-0.01", "A price can&#x27;t be negative."),
        ("amortisation_months", "0", "Write the server off over at least 1 month."),
        ("purchased", "2999-01-01", "The server can&#x27;t have been bought in the future."),
        ("currency", "eu", "A currency is three capital letters"),
        ("base_watts", "", "This field is required."),
    ],
)
def test_bad_settings_are_refused_in_words_and_nothing_is_saved(
    admin_client: Client, config: CostSettings, field: str, value: str, message: str
) -> None:
    response = admin_client.post(URL, {"save_settings": "1", **_settings_post(**{"other_monthly": "5", field: value})})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert "Nothing was saved: fix the fields marked below." in response.content.decode()
    assert CostSettings.current().other_monthly == Decimal(10)
    assert response.context["report"].settings.other_monthly == Decimal(10)  # the figures stay the saved ones
    assert not AuditEvent.objects.filter(action__startswith="cost.").exists()


def _prices_post(rows: list[CloudInstance], *, changes: dict[str, str] | None = None, new: dict[str, str] | None = None
                 ) -> dict[str, str]:  # fmt: skip
    data = {"save_prices": "1", "prices-TOTAL_FORMS": str(len(rows) + 1), "prices-INITIAL_FORMS": str(len(rows)),
            "prices-MIN_NUM_FORMS": "0", "prices-MAX_NUM_FORMS": "1000"}  # fmt: skip
    for index, row in enumerate(rows):
        data |= {f"prices-{index}-id": str(row.pk), f"prices-{index}-name": row.name,
                 f"prices-{index}-gpus": str(row.gpus), f"prices-{index}-hourly_price": str(row.hourly_price),
                 f"prices-{index}-stands_for": row.stands_for}  # fmt: skip
    data |= {f"prices-{len(rows)}-gpus": "0"}  # the empty row as the browser sends it back
    for key, value in (new or {}).items():
        data[f"prices-{len(rows)}-{key}"] = value
    return data | {f"prices-{key}": value for key, value in (changes or {}).items()}


def test_the_price_table_adds_edits_and_deletes_rows_together_with_an_audit_row_each(
    admin_client: Client, config: CostSettings
) -> None:
    rows = list(CloudInstance.objects.all())  # plain, dearer plain, one GPU, four GPUs
    post = _prices_post(rows, changes={"0-hourly_price": "0.12", "1-DELETE": "on"},
                        new={"name": "eight GPUs", "gpus": "8", "hourly_price": "9.00"})  # fmt: skip
    response = admin_client.post(URL, post)
    assert response.status_code == 302
    assert dict(CloudInstance.objects.values_list("name", "hourly_price")) == {
        "plain": Decimal("0.12"), "one GPU": Decimal("0.60"), "four GPUs": Decimal("2.50"),
        "eight GPUs": Decimal("9.00")}  # fmt: skip
    assert sorted(AuditEvent.objects.values_list("action", "target_label")) == [
        ("cost.price_deleted", "dearer plain"),
        ("cost.price_saved", "eight GPUs"),
        ("cost.price_saved", "plain"),
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"2-DELETE": "on", "3-DELETE": "on"}, "Keep a row with GPUs: it prices a GPU-hour."),
        ({"0-DELETE": "on", "1-DELETE": "on"}, "Keep a row without GPUs: it prices a workspace-hour."),
        ({"2-hourly_price": "0.05"}, "“one GPU” has GPUs but costs no more than the cheapest row without"),
        ({"2-hourly_price": "-1"}, "A price can&#x27;t be negative."),
        ({"3-name": "plain"}, "Another price row has this name."),
        ({"2-gpus": "17"}, "16 GPUs at most."),
    ],
)
def test_a_bad_price_table_is_refused_in_words_and_nothing_is_half_saved(
    admin_client: Client, config: CostSettings, changes: dict[str, str], message: str
) -> None:
    before = list(CloudInstance.objects.values_list("name", "gpus", "hourly_price"))
    rows = list(CloudInstance.objects.all())
    response = admin_client.post(URL, _prices_post(rows, changes={"0-hourly_price": "0.11", **changes}))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert "Nothing was saved: no row was added, changed or deleted." in response.content.decode()
    assert list(CloudInstance.objects.values_list("name", "gpus", "hourly_price")) == before
    assert not AuditEvent.objects.filter(action__startswith="cost.").exists()


def test_without_any_use_the_page_says_the_server_never_pays_for_itself_at_this_rate(
    admin_client: Client, config: CostSettings
) -> None:
    html = admin_client.get(URL).content.decode()
    assert 'id="break-even">never, at this rate' in html
    assert "running the server costs more than the cloud would for this use" in html
    assert "not measured" in html  # no count of running workspaces yet
