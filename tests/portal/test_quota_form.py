from __future__ import annotations

import os

import pytest
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import reverse

from portal.forms.members import QuotaForm
from portal.models import AuditEvent, Host, Quota, User

G = 1024**3
T = 1024**4
VALID = {
    "mem_guarantee": "32G",
    "mem_limit": "100G",
    "swap": "50G",
    "cpuset": "",
    "max_gpus": "1",
    "storage_soft": "1T",
    "storage_hard": "",
}


@pytest.fixture
def eight_cpus(db: None) -> None:
    # update_or_create: a transactional test elsewhere may have flushed the migration's row.
    Host.objects.update_or_create(name="local", defaults={"queue": "host.local", "cpu_count": 8})


def _errors(quota: Quota, **changes: str) -> dict[str, list[str]]:
    form = QuotaForm({**VALID, **changes}, quota=quota)
    assert not form.is_valid()
    return form.errors


# --- the form on its own ----------------------------------------------------------------


def test_it_shows_the_quota_in_human_units(bob: User) -> None:
    form = QuotaForm(quota=bob.quota)
    shown = {name: form[name].value() for name in VALID}
    assert shown == {
        "mem_guarantee": "32G",
        "mem_limit": "100G",
        "swap": "50G",
        "cpuset": "",
        "max_gpus": 1,
        "storage_soft": "1T",
        "storage_hard": "",
    }


def test_it_turns_human_units_into_bytes(bob: User, eight_cpus: None) -> None:
    data = {**VALID, "mem_guarantee": "1536M", "swap": "0", "cpuset": " 0-3, 6 ", "storage_hard": "1.5T"}
    form = QuotaForm(data, quota=bob.quota)
    assert form.is_valid(), form.errors
    assert form.values() == {
        "mem_guarantee": 1536 * 1024**2,
        "mem_limit": 100 * G,
        "swap": 0,
        "cpuset": "0-3,6",
        "max_gpus": 1,
        "storage_soft": T,
        "storage_hard": int(1.5 * T),
    }


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"mem_guarantee": "lots"}, "mem_guarantee", "“lots” is not a size. Use a number and a unit, like 32G or 1T."),
        ({"mem_limit": "-5G"}, "mem_limit", "“-5G” is not a size. Use a number and a unit, like 32G or 1T."),
        ({"mem_guarantee": "0G"}, "mem_guarantee", "Must be more than 0."),
        ({"storage_soft": "0"}, "storage_soft", "Must be more than 0."),
        ({"mem_limit": "64"}, "mem_limit", "Add a unit: “64” would mean 64 bytes. Write 64G, 64M or 64T."),
        ({"swap": ""}, "swap", "This field is required."),
        ({"storage_soft": "99999999P"}, "storage_soft", "“99999999P” is too large."),
        ({"storage_soft": "9" * 400 + "G"}, "storage_soft", "Too long for a size; write it like 32G or 1T."),
        (
            {"mem_guarantee": "200G", "mem_limit": "100G"},
            "mem_guarantee",
            "The guarantee (200G) can't be more than the limit (100G).",
        ),
        (
            {"storage_soft": "1T", "storage_hard": "500G"},
            "storage_hard",
            "The hard limit (500G) must be at least the soft limit (1T).",
        ),
        (
            {"cpuset": "0-7x"},
            "cpuset",
            "“0-7x” is not a CPU or range. Use CPU numbers and ranges like 0-7 or 0-3,8-11.",
        ),
        ({"cpuset": "3-"}, "cpuset", "“3-” is not a CPU or range. Use CPU numbers and ranges like 0-7 or 0-3,8-11."),
        (
            {"cpuset": "1-2-3"},
            "cpuset",
            "“1-2-3” is not a CPU or range. Use CPU numbers and ranges like 0-7 or 0-3,8-11.",
        ),
        ({"cpuset": "0,,1"}, "cpuset", "There is an empty entry; remove the extra comma."),
        ({"cpuset": "7-0"}, "cpuset", "The range 7-0 goes backwards; write 0-7."),
        ({"cpuset": "0-3,8-11"}, "cpuset", "CPU 11 does not exist: this host has 8 CPUs (0-7)."),
        ({"cpuset": "8"}, "cpuset", "CPU 8 does not exist: this host has 8 CPUs (0-7)."),
        ({"cpuset": "0-3,2-5"}, "cpuset", "2-5 overlaps another part of the set; list each CPU once."),
        ({"max_gpus": "17"}, "max_gpus", "Use a number from 0 to 16."),
        ({"max_gpus": "-1"}, "max_gpus", "Use a number from 0 to 16."),
        ({"max_gpus": "two"}, "max_gpus", "Use a whole number from 0 to 16."),
    ],
)
def test_it_explains_each_bad_value(
    bob: User, eight_cpus: None, changes: dict[str, str], field: str, message: str
) -> None:
    assert _errors(bob.quota, **changes)[field] == [message]


def test_it_checks_cpus_against_this_machine_when_the_host_was_not_measured(bob: User) -> None:
    Host.objects.update_or_create(name="local", defaults={"queue": "host.local", "cpu_count": None})
    count = os.cpu_count() or 1
    assert _errors(bob.quota, cpuset=str(count))["cpuset"] == [
        f"CPU {count} does not exist: this host has {count} CPUs (0-{count - 1})."
    ]
    assert QuotaForm({**VALID, "cpuset": f"0-{count - 1}"}, quota=bob.quota).is_valid()


def test_it_accepts_the_limits_at_the_edges(bob: User, eight_cpus: None) -> None:
    data = {**VALID, "mem_guarantee": "100G", "cpuset": "0-7", "max_gpus": "16", "storage_hard": "1T"}
    assert QuotaForm(data, quota=bob.quota).is_valid()
    assert QuotaForm({**data, "max_gpus": "0", "cpuset": "7"}, quota=bob.quota).is_valid()


# --- through the page -------------------------------------------------------------------


def test_saving_limits_stores_bytes_and_audits_old_and_new(
    admin_client: Client, admin_user: User, bob: User, eight_cpus: None
) -> None:
    data = {**VALID, "mem_guarantee": "64G", "mem_limit": "128G", "cpuset": "0-3", "storage_hard": "2T"}
    response = admin_client.post(reverse("member-quota", args=[bob.pk]), data)
    assert response.status_code == 302
    assert response["Location"].endswith("#member-quota")
    quota = Quota.objects.get(user=bob)
    assert (quota.mem_guarantee, quota.mem_limit, quota.cpuset, quota.storage_hard) == (64 * G, 128 * G, "0-3", 2 * T)
    event = AuditEvent.objects.get(action="quota.update")
    assert (event.actor, event.target_id) == (admin_user, str(bob.pk))
    assert event.detail["changes"] == {
        "mem_guarantee": [32 * G, 64 * G],
        "mem_limit": [100 * G, 128 * G],
        "cpuset": ["", "0-3"],
        "storage_hard": [None, 2 * T],
    }


def test_saving_unchanged_limits_writes_no_audit_row(admin_client: Client, bob: User) -> None:
    admin_client.post(reverse("member-quota", args=[bob.pk]), VALID)
    assert not AuditEvent.objects.filter(action="quota.update").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mem_guarantee": "200G"}, "The guarantee (200G) can&#x27;t be more than the limit (100G)."),
        ({"cpuset": "0-8"}, "CPU 8 does not exist: this host has 8 CPUs (0-7)."),
        ({"storage_hard": "10G"}, "The hard limit (10G) must be at least the soft limit (1T)."),
        ({"mem_limit": "much"}, "“much” is not a size."),
    ],
)
def test_bad_limits_are_explained_on_the_page_and_nothing_changes(
    admin_client: Client, bob: User, eight_cpus: None, changes: dict[str, str], message: str
) -> None:
    before = model_to_dict(bob.quota)
    # The valid fields change too, so a partial save would show.
    data = {**VALID, "swap": "10G", "max_gpus": "4", **changes}
    response = admin_client.post(reverse("member-quota", args=[bob.pk]), data)
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body
    assert 'aria-invalid="true"' in body
    assert model_to_dict(Quota.objects.get(user=bob)) == before
    assert not AuditEvent.objects.filter(action="quota.update").exists()


def test_htmx_saves_swap_only_the_card(admin_client: Client, bob: User) -> None:
    response = admin_client.post(
        reverse("member-quota", args=[bob.pk]), {**VALID, "max_gpus": "3"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count('id="member-quota"') == 1
    assert "<html" not in body
    assert "Saved" in body
    assert 'value="3"' in body
    assert Quota.objects.get(user=bob).max_gpus == 3


def test_htmx_errors_come_back_in_the_card_with_status_200_so_htmx_swaps_them(admin_client: Client, bob: User) -> None:
    response = admin_client.post(
        reverse("member-quota", args=[bob.pk]), {**VALID, "max_gpus": "99"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body
    assert "Use a number from 0 to 16." in body
    assert Quota.objects.get(user=bob).max_gpus == 1


def test_a_member_without_a_quota_row_gets_one_on_the_first_save(admin_client: Client, bob: User) -> None:
    Quota.objects.filter(user=bob).delete()
    page = admin_client.get(reverse("member-detail", args=[bob.pk]))
    assert page.context["quota_form"]["mem_limit"].value() == "100G"
    assert "Team defaults, not saved yet" in page.content.decode()
    response = admin_client.post(reverse("member-quota", args=[bob.pk]), VALID)
    assert response.status_code == 302
    assert Quota.objects.get(user=bob).mem_limit == 100 * G


# --- the guarantee against the servers' memory ------------------------------------------


def _host_memory(name: str, memory: int | None) -> None:
    Host.objects.update_or_create(name=name, defaults={"queue": f"host.{name}", "memory_bytes": memory})


def test_a_guarantee_larger_than_the_server_is_refused_naming_the_server_and_its_memory(bob: User) -> None:
    _host_memory("local", int(23.5 * G))
    assert _errors(bob.quota, mem_guarantee="30G")["mem_guarantee"] == [
        "No server can guarantee 30G: the largest, local, has 23.5G of memory in all."
    ]


def test_a_guarantee_as_large_as_the_server_is_accepted(bob: User) -> None:
    _host_memory("local", 64 * G)
    assert QuotaForm({**VALID, "mem_guarantee": "64G"}, quota=bob.quota).is_valid()


def test_a_guarantee_only_a_larger_second_server_can_hold_is_accepted(bob: User) -> None:
    _host_memory("local", int(23.5 * G))
    _host_memory("gpu2", 256 * G)
    assert QuotaForm({**VALID, "mem_guarantee": "30G"}, quota=bob.quota).is_valid()
    assert _errors(bob.quota, mem_guarantee="300G", mem_limit="300G")["mem_guarantee"] == [
        "No server can guarantee 300G: the largest, gpu2, has 256G of memory in all."
    ]


def test_the_guarantee_is_not_checked_while_a_servers_memory_is_unknown(bob: User) -> None:
    _host_memory("local", int(23.5 * G))
    _host_memory("gpu2", None)  # not measured yet: it may well be the larger one
    assert QuotaForm({**VALID, "mem_guarantee": "30G"}, quota=bob.quota).is_valid()


def test_saving_a_guarantee_larger_than_the_server_says_why_and_saves_nothing(admin_client: Client, bob: User) -> None:
    _host_memory("local", int(23.5 * G))
    before = model_to_dict(bob.quota)
    data = {**VALID, "mem_guarantee": "30G", "swap": "1G"}  # swap changes too, so a partial save would show
    response = admin_client.post(reverse("member-quota", args=[bob.pk]), data)
    assert response.status_code == 400
    assert "No server can guarantee 30G: the largest, local, has 23.5G of memory in all." in response.content.decode()
    assert model_to_dict(Quota.objects.get(user=bob)) == before
    assert not AuditEvent.objects.filter(action="quota.update").exists()
