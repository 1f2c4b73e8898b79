"""The member's account page: identity, quota, and adding and deleting SSH keys."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives import serialization
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.forms.account import KEY_TAKEN_MESSAGE
from portal.models import AuditEvent, SSHKey, User
from portal.services import sshkey_add
from portal.sshkeys import parse_public_key
from tests.factories import SSHKeyFactory
from tests.portal.test_sshkeys import fresh_ed25519_line, private_text, public_line

ACCOUNT = "/account/"


def _add(client: Client, public_key: str, name: str = "", **headers: str) -> str:
    response = client.post(ACCOUNT, {"name": name, "public_key": public_key}, **headers)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def _register(user: User, line: str, name: str = "laptop") -> SSHKey:
    return sshkey_add(user=user, name=name, parsed=parse_public_key(line))


def test_the_account_url_is_named_account() -> None:
    assert reverse("account") == ACCOUNT


def test_it_sends_anonymous_visitors_to_login(client: Client, db: None) -> None:
    response = client.get(ACCOUNT)
    assert response.status_code == 302
    assert SSHKey.objects.count() == 0


def test_it_shows_the_members_linux_identity_and_limits(alice_client: Client, alice: User) -> None:
    alice.can_docker = True
    alice.save()
    body = alice_client.get(ACCOUNT).content.decode()
    assert "alice@corp.example" in body
    assert f"{alice.uid} / {alice.gid}" in body
    assert re.search(r"<dt>Docker</dt><dd><span class=\"pill pill-ok\">allowed", body)
    assert re.search(r"<dt>sudo</dt><dd><span class=\"pill\">not allowed", body)
    assert "32G guaranteed, up to 100G" in body
    assert "1T" in body


def test_it_lists_only_the_members_own_keys(alice_client: Client, alice: User, bob: User) -> None:
    mine = _register(alice, public_line("ecdsa", 384), name="work laptop")
    _register(bob, fresh_ed25519_line(), name="bobs-secret-box")
    body = alice_client.get(ACCOUNT).content.decode()
    assert "work laptop" in body
    assert mine.fingerprint in body
    assert "ecdsa-sha2-nistp384" in body
    assert "bobs-secret-box" not in body
    assert reverse("sshkey-delete", args=[mine.pk]) in body


def test_it_adds_a_key_and_audits_it(alice_client: Client, alice: User) -> None:
    line = public_line("ed25519", comment="alice@laptop")
    response = alice_client.post(ACCOUNT, {"name": "Laptop", "public_key": line}, follow=True)
    key = SSHKey.objects.get(user=alice)
    assert (key.name, key.key_type, key.bits, key.public_key) == ("Laptop", "ssh-ed25519", 256, line)
    assert key.fingerprint.startswith("SHA256:")
    assert response.redirect_chain == [(ACCOUNT, 302)]
    assert f"Added the key “Laptop” ({key.fingerprint})" in response.content.decode()
    event = AuditEvent.objects.get(action="sshkey.add")
    assert (event.actor, event.target_id, event.detail["fingerprint"]) == (alice, str(key.pk), key.fingerprint)


def test_the_name_defaults_to_the_keys_comment(alice_client: Client, alice: User) -> None:
    alice_client.post(ACCOUNT, {"name": "", "public_key": fresh_ed25519_line("alice@desk")})
    alice_client.post(ACCOUNT, {"name": "", "public_key": fresh_ed25519_line()})
    assert list(alice.ssh_keys.values_list("name", flat=True)) == ["alice@desk", "ssh-ed25519"]


REFUSED = [
    ("", "Paste a public key"),
    ("not a key at all", "does not look like an SSH public key"),
    ("PRIVATE_OPENSSH", "This is a PRIVATE key"),
    ("PRIVATE_PKCS8", "This is a PRIVATE key"),
    ("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "DSA keys are insecure"),
    ("RSA_1024", "at least 2048 are required"),
    ('command="/bin/sh" ED25519', "Key options (like command= or from=) are not allowed"),
    ('from="10.0.0.1" ED25519', "Key options (like command= or from=) are not allowed"),
    ("TWO_KEYS", "Paste exactly one key, on one line."),
    ("DAMAGED_BASE64", "not valid base64"),
    ("TYPE_MISMATCH", "does not match its type"),
]


def _bad_text(template: str) -> str:
    specials = {
        "PRIVATE_OPENSSH": lambda: private_text(serialization.PrivateFormat.OpenSSH),
        "PRIVATE_PKCS8": lambda: private_text(serialization.PrivateFormat.PKCS8),
        "RSA_1024": lambda: public_line("rsa", 1024),
        "TWO_KEYS": lambda: f"{fresh_ed25519_line('a')}\n{fresh_ed25519_line('b')}",
        "DAMAGED_BASE64": lambda: public_line("ed25519")[:-5],
        "TYPE_MISMATCH": lambda: "ssh-rsa " + public_line("ed25519").split()[1],
    }
    if template in specials:
        return specials[template]()
    return template.replace("ED25519", public_line("ed25519"))


@pytest.mark.parametrize(("template", "message"), REFUSED)
def test_it_refuses_a_bad_key_next_to_the_field_and_saves_nothing(
    alice_client: Client, template: str, message: str
) -> None:
    body = _add(alice_client, _bad_text(template), name="mine")
    errors = re.search(r'<ul class="errorlist" id="id_public_key_error"[^>]*>(.*?)</ul>', body, re.S)
    assert errors is not None
    assert message in errors.group(1).replace("&quot;", '"').replace("&#x27;", "'")
    assert re.search(r'<textarea[^>]*aria-invalid="true"[^>]*id="id_public_key"', body)
    assert SSHKey.objects.count() == 0
    assert not AuditEvent.objects.filter(action="sshkey.add").exists()


def _textarea_content(body: str) -> str:
    match = re.search(r'<textarea[^>]*id="id_public_key"[^>]*>(.*?)</textarea>', body, re.S)
    assert match is not None
    return match.group(1).strip()


@pytest.mark.parametrize("headers", [{}, {"HTTP_HX_REQUEST": "true"}], ids=["page", "htmx"])
def test_a_pasted_private_key_is_refused_and_never_echoed_back_into_the_page(
    alice_client: Client, headers: dict[str, str]
) -> None:
    secret = private_text(serialization.PrivateFormat.OpenSSH)
    body = _add(alice_client, secret, name="mine", **headers)
    assert "This is a PRIVATE key" in body
    assert "the box has been emptied" in body
    assert _textarea_content(body) == ""
    for line in secret.splitlines()[1:-1]:  # the key material between BEGIN and END
        assert line not in body
    assert "BEGIN OPENSSH PRIVATE KEY" not in body
    assert SSHKey.objects.count() == 0


def test_a_private_key_inside_a_far_too_long_paste_is_not_echoed_back_either(alice_client: Client) -> None:
    secret = private_text(serialization.PrivateFormat.PKCS8)
    body = _add(alice_client, "x" * 20_000 + "\n" + secret, name="mine")
    assert "This is a PRIVATE key" in body
    assert _textarea_content(body) == ""
    assert secret.splitlines()[1] not in body


def test_a_rejected_public_key_stays_in_the_box_to_be_corrected(alice_client: Client) -> None:
    body = _add(alice_client, "ssh-ed25519 !!!", name="mine")
    assert _textarea_content(body) == "ssh-ed25519 !!!"


def test_it_refuses_a_key_someone_else_registered_without_naming_them(alice_client: Client, bob: User) -> None:
    line = public_line("ecdsa", 256)
    _register(bob, line, name="bobs-box")
    body = _add(alice_client, line, name="mine")
    assert KEY_TAKEN_MESSAGE.split(",")[0] in body
    assert "bob" not in body.split('id="sshkey-list"')[1]
    assert SSHKey.objects.get().user == bob


def test_it_refuses_a_key_the_member_already_registered(alice_client: Client, alice: User) -> None:
    line = fresh_ed25519_line()
    _register(alice, line)
    body = _add(alice_client, line, name="again")
    assert "already registered" in body
    assert alice.ssh_keys.count() == 1


def test_it_refuses_a_second_key_with_the_same_name(alice_client: Client, alice: User) -> None:
    _register(alice, fresh_ed25519_line(), name="Laptop")
    body = _add(alice_client, fresh_ed25519_line(), name="laptop")
    assert re.search(r'id="id_name_error"[^>]*><li>You already have a key named “laptop”', body)
    assert re.search(r'<input[^>]*aria-invalid="true"[^>]*id="id_name"', body)
    assert alice.ssh_keys.count() == 1


def test_another_member_may_use_the_same_key_name(alice_client: Client, alice: User, bob: User) -> None:
    _register(bob, fresh_ed25519_line(), name="laptop")
    alice_client.post(ACCOUNT, {"name": "laptop", "public_key": fresh_ed25519_line()})
    assert alice.ssh_keys.get().name == "laptop"


def test_an_htmx_add_answers_with_the_keys_section_only(alice_client: Client, alice: User) -> None:
    body = _add(alice_client, fresh_ed25519_line(), name="desk", HTTP_HX_REQUEST="true")
    assert body.lstrip().startswith('<section class="card" id="sshkey-list"')
    assert "<html" not in body
    key = alice.ssh_keys.get()
    assert f'id="sshkey-{key.pk}"' in body
    assert "Added the key “desk”" in body
    assert 'name="public_key"' in body
    assert "aria-invalid" not in body


def test_an_htmx_add_with_a_bad_key_shows_the_error_in_the_section(alice_client: Client) -> None:
    body = _add(alice_client, "ssh-ed25519 !!!", name="desk", HTTP_HX_REQUEST="true")
    assert "<html" not in body
    assert "not valid base64" in body
    assert SSHKey.objects.count() == 0


def test_adding_a_key_needs_a_csrf_token(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(ACCOUNT, {"name": "x", "public_key": fresh_ed25519_line()})
    assert response.status_code == 403
    assert SSHKey.objects.count() == 0


def test_the_member_deletes_their_own_key(alice_client: Client, alice: User) -> None:
    key = _register(alice, fresh_ed25519_line(), name="old")
    response = alice_client.post(reverse("sshkey-delete", args=[key.pk]), follow=True)
    assert response.redirect_chain == [(ACCOUNT, 302)]
    assert "Removed the key “old”" in response.content.decode()
    assert not SSHKey.objects.exists()
    event = AuditEvent.objects.get(action="sshkey.remove")
    assert (event.actor, event.outcome, event.detail["fingerprint"]) == (alice, "ok", key.fingerprint)


def test_an_htmx_delete_answers_with_the_keys_section(alice_client: Client, alice: User) -> None:
    gone = _register(alice, fresh_ed25519_line(), name="old")
    kept = _register(alice, fresh_ed25519_line(), name="new")
    response = alice_client.post(reverse("sshkey-delete", args=[gone.pk]), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert f'id="sshkey-{kept.pk}"' in body
    assert f'id="sshkey-{gone.pk}"' not in body


def test_deleting_another_members_key_is_refused_and_audited(alice_client: Client, alice: User, bob: User) -> None:
    key = _register(bob, fresh_ed25519_line(), name="bobs")
    response = alice_client.post(reverse("sshkey-delete", args=[key.pk]))
    assert response.status_code == 403
    assert SSHKey.objects.filter(pk=key.pk).exists()
    event = AuditEvent.objects.get(action="sshkey.denied")
    assert (event.actor, event.outcome, event.target_id) == (alice, "refused", str(key.pk))


def test_deleting_a_key_that_does_not_exist_is_not_found(alice_client: Client) -> None:
    assert alice_client.post(reverse("sshkey-delete", args=[999_999])).status_code == 404


def test_deleting_needs_post(alice_client: Client, alice: User) -> None:
    key = _register(alice, fresh_ed25519_line())
    assert alice_client.get(reverse("sshkey-delete", args=[key.pk])).status_code == 405
    assert SSHKey.objects.filter(pk=key.pk).exists()


@pytest.mark.parametrize("key_count", [1, 25])
def test_the_page_costs_four_queries_however_many_keys(
    alice_client: Client, alice: User, django_assert_num_queries, key_count: int
) -> None:
    SSHKeyFactory.create_batch(key_count, user=alice)
    # the member, the unread-notification count, the keys, the quota (the session is cached)
    with django_assert_num_queries(4):
        response = alice_client.get(ACCOUNT)
    assert response.content.decode().count('<tr id="sshkey-') == key_count


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.text(max_size=120),
    text=st.one_of(
        st.text(max_size=300),
        st.builds(lambda junk: public_line("ed25519") + junk, st.text(max_size=30)),
        st.builds(lambda junk: junk + public_line("rsa", 2048), st.text(max_size=30)),
    ),
)
def test_posting_anything_to_the_add_key_form_never_fails(alice_client: Client, name: str, text: str) -> None:
    before = SSHKey.objects.count()
    response = alice_client.post(ACCOUNT, {"name": name, "public_key": text})
    assert response.status_code in (200, 302)
    assert SSHKey.objects.count() == before + (response.status_code == 302)
