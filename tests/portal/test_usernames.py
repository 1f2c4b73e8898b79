"""Linux usernames: the validator, the suggestion from an e-mail, and the invite form, under
arbitrary input (hypothesis)."""

from __future__ import annotations

import itertools
import re

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from portal.identity import RESERVED_USERNAMES, suggest_username, validate_linux_username
from portal.models import User

USERNAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

# Plain text finds few valid names; mix in near-misses of the pattern and the reserved list.
usernames = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\A[a-z_][a-z0-9_-]{0,33}\Z"),
    st.from_regex(r"\A[A-Za-z0-9_.\- ]{1,34}\Z"),
    st.sampled_from(sorted(RESERVED_USERNAMES)),
)


def _accepted(value: str) -> bool:
    try:
        validate_linux_username(value)
    except ValidationError as exc:
        messages = exc.messages
    else:
        return True
    assert messages, "a refusal says why"
    return False


@settings(max_examples=300, deadline=None)
@given(usernames)
def test_a_username_is_either_valid_and_unreserved_or_refused_with_a_validation_error(value: str) -> None:
    if _accepted(value):
        assert USERNAME_RE.fullmatch(value)
        assert value not in RESERVED_USERNAMES


@pytest.mark.parametrize("value", ["alice", "_svc", "a", "j-doe_2", "a" * 32, "x0-_"])
def test_it_accepts_ordinary_linux_names(value: str) -> None:
    validate_linux_username(value)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "invalid_username"),
        ("Alice", "invalid_username"),
        ("1alice", "invalid_username"),
        ("-alice", "invalid_username"),
        ("a" * 33, "invalid_username"),
        ("al ice", "invalid_username"),
        ("alice\n", "invalid_username"),
        ("al;rm -rf", "invalid_username"),
        ("ålice", "invalid_username"),
        ("root", "reserved_username"),
        ("docker", "reserved_username"),
        ("www-data", "reserved_username"),
    ],
)
def test_it_refuses_unsafe_or_reserved_names(value: str, code: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        validate_linux_username(value)
    assert excinfo.value.code == code


def test_it_refuses_values_that_are_not_text() -> None:
    with pytest.raises(ValidationError):
        validate_linux_username(None)  # type: ignore[arg-type]


email_like = st.one_of(
    st.emails(),
    st.builds(lambda local, domain: f"{local}@{domain}", st.text(max_size=80), st.text(max_size=20)),
    st.text(max_size=80),
    st.sampled_from([f"{name}@corp.example" for name in sorted(RESERVED_USERNAMES)]),
)


@settings(max_examples=300, deadline=None)
@given(email_like)
def test_the_suggested_username_is_always_valid(email: str) -> None:
    validate_linux_username(suggest_username(email))


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("Jane.Doe+gpu@corp.example", "jane_doe"),
        ("root@corp.example", "root_u"),
        ("42@corp.example", "u_42"),
        ("@corp.example", "u_"),
        ("-x-@corp.example", "x"),
    ],
)
def test_it_suggests_a_name_from_the_local_part(email: str, expected: str) -> None:
    assert suggest_username(email) == expected


_emails = itertools.count()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(username=usernames)
@example(username="newbie")
@example(username=" spaced ")
@example(username="root")
@example(username="Bad Name")
@example(username="nul\x00")
def test_the_invite_form_never_fails_whatever_username_is_posted(admin_client: Client, username: str) -> None:
    # One db transaction spans every example, so names accepted earlier are taken later.
    email = f"invitee{next(_emails)}@corp.example"
    has_nul = "\x00" in username  # PostgreSQL text can't hold NUL, so don't even look it up
    taken = not has_nul and User.objects.filter(username=username.strip()).exists()
    response = admin_client.post(reverse("member-invite"), {"email": email, "username": username})
    assert response.status_code in (302, 400)
    should_accept = not has_nul and _accepted(username.strip()) and not taken
    assert (response.status_code == 302) == should_accept
    assert User.objects.filter(email=email).exists() == should_accept
