"""The storage pages and panels as members and admins see them: the dashboard card, the
members list's column (a fixed number of queries with usage shown), a member's storage section
with the deletion, and the storage page with its chart data."""

from __future__ import annotations

import json
import re

from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.models import Quota, User
from storage.models import FilesystemState, MemberStorage
from tests.factories import UserFactory

G = 1024**3
T = 1024**4


def measured(user: User, *, home: int, scratch: int, hard: int | None = None) -> MemberStorage:
    return MemberStorage.objects.create(
        user=user,
        kind=MemberStorage.Kind.SUBVOLUME,
        home_path=f"/srv/homes/{user.username}",
        scratch_path=f"/srv/scratch/{user.username}",
        qgroup=f"1/{user.uid}",
        referenced=home + scratch,
        exclusive=home + scratch,
        home_referenced=home,
        scratch_referenced=scratch,
        hard_limit_applied=hard,
        measured_at=timezone.now(),
    )


def test_the_dashboard_card_shows_the_members_use_against_the_soft_limit(alice: User, alice_client: Client) -> None:
    measured(alice, home=600 * G, scratch=500 * G)
    body = alice_client.get(reverse("dashboard")).content.decode()
    card = body[body.index('id="storage-card"') :]
    card = card[: card.index("</section>")]
    assert "1.1T" in card
    assert "used of 1T" in card
    assert "over its soft limit" not in card
    assert "over the team's soft limit" in card
    assert "never backed up" in card  # scratch


def test_the_dashboard_card_says_when_homes_are_plain_folders(alice: User, alice_client: Client) -> None:
    MemberStorage.objects.create(user=alice, kind=MemberStorage.Kind.FOLDER, home_path="/h", scratch_path="/s")
    body = alice_client.get(reverse("dashboard")).content.decode()
    assert "plain folder on this server" in body


def test_the_members_list_shows_usage_in_the_same_queries_for_ten_and_a_hundred(
    admin_client: Client, django_assert_num_queries
) -> None:
    def add(count: int, start: int) -> None:
        users = User.objects.bulk_create(
            User(username=f"s{i:04d}", dns_label=f"s{i:04d}", email=f"s{i}@corp.example", uid=300_000 + i)
            for i in range(start, start + count)
        )
        Quota.objects.bulk_create(Quota(user=user, **Quota.team_defaults()) for user in users)
        for user in users:
            measured(user, home=(user.uid % 7) * G, scratch=G)

    add(10, 0)
    with django_assert_num_queries(7):
        small = admin_client.get(reverse("member-list"))
    add(90, 10)
    with django_assert_num_queries(7):
        large = admin_client.get(reverse("member-list"))
    assert small.status_code == large.status_code == 200
    assert large.content.decode().count('class="usage-bar') == 99  # the first page: 100 rows, one the admin's


def test_a_departed_members_section_offers_the_typed_deletion(admin_client: Client) -> None:
    gone = UserFactory(username="gone", status=User.Status.SUSPENDED)
    measured(gone, home=2 * G, scratch=0)
    body = admin_client.get(reverse("member-detail", args=[gone.pk])).content.decode()
    assert "Delete home and scratch" in body
    assert "Type gone exactly" in body
    active = UserFactory(username="here")
    measured(active, home=G, scratch=0)
    body = admin_client.get(reverse("member-detail", args=[active.pk])).content.decode()
    assert "Delete home and scratch" not in body
    assert "once they are suspended" in body


def test_a_deletion_without_the_confirmation_is_refused_with_a_message(admin_client: Client) -> None:
    gone = UserFactory(username="gone", status=User.Status.SUSPENDED)
    row = measured(gone, home=G, scratch=0)
    response = admin_client.post(reverse("storage:member-delete", args=[gone.pk]), {"confirm": "nope"}, follow=True)
    assert "type gone exactly" in response.content.decode()
    row.refresh_from_db()
    assert row.state == MemberStorage.State.PRESENT
    response = admin_client.post(reverse("storage:member-delete", args=[gone.pk]), {}, follow=True)
    assert "Type the member&#x27;s username to confirm." in response.content.decode()


def test_the_storage_page_shows_the_filesystem_devices_and_each_members_use(admin_client: Client) -> None:
    errors = {"write_io_errs": 0, "read_io_errs": 2, "flush_io_errs": 0, "corruption_errs": 0, "generation_errs": 0}
    FilesystemState.objects.create(
        root=settings.STORAGE_ROOT,
        on_btrfs=True,
        size=80 * T,
        used=30 * T,
        free=25 * T,
        data_profile="RAID10",
        metadata_profile="RAID10",
        devices=[
            {"devid": n, "path": f"/dev/sd{c}", "size": 20 * T, "used": 15 * T, "errors": errors}
            for n, c in ((1, "b"), (2, "c"))
        ],
        folders=[{"name": "homes", "path": "/srv/homes", "subvolume": True}],
        measured_at=timezone.now(),
    )
    heavy, light = UserFactory(username="heavy"), UserFactory(username="light")
    measured(heavy, home=1200 * G, scratch=100 * G)
    measured(light, home=10 * G, scratch=0)
    response = admin_client.get(reverse("storage:overview"))
    body = response.content.decode()
    assert "RAID10" in body
    assert "/dev/sdc" in body
    assert "80T" in body
    assert re.search(r'class="num text-bad">2<', body)  # read errors stand out
    chart = json.loads(re.search(r'id="storage-data" type="application/json">(.*?)</script>', body)[1])
    assert chart["labels"] == ["heavy", "light"]  # the largest first
    assert chart["unit"] == "GiB"
    assert chart["home"] == [1200.0, 10.0]
    assert chart["scratch"] == [100.0, 0.0]
    assert chart["over"] == [True, False]
    assert chart["soft"] == [1024.0, 1024.0]


def test_the_storage_page_says_when_the_root_is_not_btrfs(admin_client: Client) -> None:
    FilesystemState.objects.create(root=settings.STORAGE_ROOT, on_btrfs=False, size=T, used=G, free=T - G)
    body = admin_client.get(reverse("storage:overview")).content.decode()
    assert "is not on BTRFS, so members' homes are plain folders" in body
