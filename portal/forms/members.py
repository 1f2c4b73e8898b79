"""Forms of the admin pages: invitations, quotas in human units, capabilities, suspension,
and the filters of the members list and the audit log."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from allauth.account.models import EmailAddress
from django import forms
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import Q, QuerySet
from django.utils import timezone

from portal.env import format_size, format_size_exact, parse_size
from portal.identity import validate_linux_username
from portal.models import AuditEvent, Host, Quota, User

MAX_GPUS = 16
# PositiveBigIntegerField holds at most 2**63 - 1 bytes.
_MAX_BYTES = 2**63 - 1
_MAX_SIZE_TEXT = 20


class InviteForm(forms.Form):
    email = forms.EmailField(label="Google account e-mail", max_length=254)
    username = forms.CharField(
        label="Username",
        max_length=32,
        validators=[validate_linux_username],
        help_text="Their Linux login in the workspace: lowercase letters, digits, _ and -.",
    )
    is_staff = forms.BooleanField(label="Admin of the portal", required=False)

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        domain = settings.GOOGLE_WORKSPACE_DOMAIN
        if email.rsplit("@", 1)[-1] != domain:
            raise ValidationError(f"Only addresses at {domain} can sign in with Google here.")
        # The allauth table too: a member's login address may differ from User.email.
        taken = User.objects.filter(email__iexact=email).exists() or (
            EmailAddress.objects.filter(email__iexact=email).exists()
        )
        if taken:
            raise ValidationError(f"{email} already belongs to a member.")
        return email

    def clean_username(self) -> str:
        username: str = self.cleaned_data["username"]
        if User.objects.filter(username=username).exists():
            raise ValidationError(f"The username {username} is taken.")
        try:  # the model's own cross-member rules, e.g. names that would share web addresses
            User(username=username).clean()
        except ValidationError as exc:
            raise ValidationError(_errors_by_field(exc).get("username", exc.messages)) from None
        return username

    def add_model_errors(self, exc: ValidationError) -> None:
        """Show an error the model raised while saving next to its field (or above the form)."""
        for field, messages in _errors_by_field(exc).items():
            self.add_error(field if field in self.fields else None, messages)


def _errors_by_field(exc: ValidationError) -> dict[str, list[str]]:
    return exc.message_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}


class SizeField(forms.CharField):
    """A size typed as "32G", stored as bytes. Bare numbers other than 0 are refused: "32"
    would be 32 bytes, which is never what an admin means."""

    def __init__(self, *, allow_zero: bool = False, **kwargs: Any) -> None:
        self.allow_zero = allow_zero
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("maxlength", str(_MAX_SIZE_TEXT))

    def prepare_value(self, value: Any) -> Any:
        if value is None:
            return ""
        return format_size_exact(value) if isinstance(value, int) else value

    def to_python(self, value: Any) -> int | None:  # type: ignore[override]
        text = super().to_python(value)
        if not text:
            return None
        if len(text) > _MAX_SIZE_TEXT:  # also keeps float() in parse_size away from infinity
            raise ValidationError("Too long for a size; write it like 32G or 1T.")
        try:
            size = parse_size(text)
        except ValueError:
            raise ValidationError(f"“{text}” is not a size. Use a number and a unit, like 32G or 1T.") from None
        if size == 0 and self.allow_zero:
            return 0
        if size <= 0:
            raise ValidationError("Must be more than 0.")
        if text.strip().isdigit():
            raise ValidationError(f"Add a unit: “{text}” would mean {size} bytes. Write {text}G, {text}M or {text}T.")
        if size > _MAX_BYTES:
            raise ValidationError(f"“{text}” is too large.")
        return size


def host_cpu_count() -> int:
    """CPUs of the local host as last measured by the worker, else of this machine."""
    measured = Host.objects.filter(name="local").values_list("cpu_count", flat=True).first()
    return measured or os.cpu_count() or 1


def largest_host() -> Host | None:
    """The host with the most memory, or None while any host's memory is unknown (it may be
    the largest). Which host a member's workspace lives on is the workspaces app's business;
    a guarantee no host can hold is wrong wherever the workspace goes."""
    hosts = list(Host.objects.only("name", "memory_bytes"))
    if not hosts or any(host.memory_bytes is None for host in hosts):
        return None
    return max(hosts, key=lambda host: host.memory_bytes or 0)


def parse_cpuset(text: str, cpu_count: int) -> str:
    """Validate "0-3,8-11" against the host; return it without spaces ("" = every CPU)."""
    compact = "".join(text.split())
    if not compact:
        return ""
    seen: set[int] = set()
    for part in compact.split(","):
        if not part:
            raise ValidationError("There is an empty entry; remove the extra comma.")
        low_text, _, high_text = part.partition("-")
        if not low_text.isdigit() or (high_text and not high_text.isdigit()) or part.endswith("-"):
            raise ValidationError(f"“{part}” is not a CPU or range. Use CPU numbers and ranges like 0-7 or 0-3,8-11.")
        low, high = int(low_text), int(high_text or low_text)
        if low > high:
            raise ValidationError(f"The range {part} goes backwards; write {high}-{low}.")
        if high >= cpu_count:
            raise ValidationError(f"CPU {high} does not exist: this host has {cpu_count} CPUs (0-{cpu_count - 1}).")
        if seen.intersection(range(low, high + 1)):
            raise ValidationError(f"{part} overlaps another part of the set; list each CPU once.")
        seen.update(range(low, high + 1))
    return compact


class QuotaForm(forms.Form):
    mem_guarantee = SizeField(label="Memory guaranteed", help_text="Kept free for them even when the server is busy.")
    mem_limit = SizeField(label="Memory limit", help_text="Hard cap; above it the kernel kills a process.")
    swap = SizeField(label="Swap", allow_zero=True, help_text="On top of the memory limit; 0 means none.")
    cpuset = forms.CharField(
        label="CPU set",
        required=False,
        max_length=200,
        help_text="Like 0-7 or 0-3,8-11. Empty means every CPU.",
    )
    max_gpus = forms.IntegerField(
        label="Max GPUs per booking",
        help_text="The most GPUs one booking may hold. 0: the member can't book GPUs, and their workspaces get none.",
        min_value=0,
        max_value=MAX_GPUS,
        error_messages={
            "min_value": "Use a number from 0 to 16.",
            "max_value": "Use a number from 0 to 16.",
            "invalid": "Use a whole number from 0 to 16.",
        },
    )
    storage_soft = SizeField(
        label="Storage soft limit",
        help_text="Home and scratch together. Crossing it warns the member and the admins once (portal and Slack); "
        "nothing is refused.",
    )
    storage_hard = SizeField(
        label="Storage hard limit",
        required=False,
        help_text="A BTRFS quota on home and scratch together: writes past it fail, and the member is warned at 90%. "
        "Blank: none. Only where the storage is BTRFS.",
    )

    def __init__(self, data: Any = None, *, quota: Quota) -> None:
        initial = {name: getattr(quota, name) for name in self.base_fields}
        super().__init__(data, initial=initial)

    def clean_cpuset(self) -> str:
        return parse_cpuset(self.cleaned_data["cpuset"], host_cpu_count())

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        guarantee, limit = data.get("mem_guarantee"), data.get("mem_limit")
        if guarantee is not None and limit is not None and guarantee > limit:
            self.add_error(
                "mem_guarantee",
                f"The guarantee ({format_size(guarantee)}) can't be more than the limit ({format_size(limit)}).",
            )
        if guarantee is not None:
            self._check_guarantee_fits(guarantee)
        soft, hard = data.get("storage_soft"), data.get("storage_hard")
        if soft is not None and hard is not None and hard < soft:
            self.add_error(
                "storage_hard",
                f"The hard limit ({format_size(hard)}) must be at least the soft limit ({format_size(soft)}).",
            )
        return data

    def _check_guarantee_fits(self, guarantee: int) -> None:
        host = largest_host()
        if host is not None and host.memory_bytes is not None and guarantee > host.memory_bytes:
            self.add_error(
                "mem_guarantee",
                f"No server can guarantee {format_size(guarantee)}: the largest, {host.name}, "
                f"has {format_size(host.memory_bytes)} of memory in all.",
            )

    def values(self) -> dict[str, Any]:
        """The cleaned values in model units (bytes), for portal.services.quota_update."""
        return {name: self.cleaned_data[name] for name in self.fields}


DOCKER_WARNING = "Docker inside the workspace runs its own engine; it never means access to the host's Docker socket."


class CapabilitiesForm(forms.Form):
    can_sudo = forms.BooleanField(label="sudo inside the workspace", required=False)
    can_docker = forms.BooleanField(label="Docker inside the workspace", required=False, help_text=DOCKER_WARNING)
    is_staff = forms.BooleanField(label="Admin of the portal", required=False)

    def __init__(self, data: Any = None, *, member: User, actor: User) -> None:
        self.member, self.actor = member, actor
        super().__init__(data, initial={name: getattr(member, name) for name in self.base_fields})
        if not settings.WORKSPACE_DOCKER_RUNTIME:
            self._docker_unavailable()
        self.is_self = member.pk == actor.pk
        if self.is_self:
            # Not offered: the template sends the role along in a hidden field instead.
            self.fields["is_staff"].widget.attrs["disabled"] = True
            self.fields["is_staff"].help_text = "You can't remove your own admin role. Another admin can."

    def _docker_unavailable(self) -> None:
        field = self.fields["can_docker"]
        field.help_text = (
            f"{DOCKER_WARNING} Not available on this server: it needs the Sysbox runtime (WORKSPACE_DOCKER_RUNTIME)."
        )
        if self.member.can_docker:
            field.help_text += " An earlier grant can still be taken back."
        else:
            # Only the widget: a posted grant still reaches clean_can_docker and is refused in words.
            field.widget.attrs["disabled"] = True

    def clean_can_docker(self) -> bool:
        can_docker: bool = self.cleaned_data["can_docker"]
        if can_docker and not self.member.can_docker and not settings.WORKSPACE_DOCKER_RUNTIME:
            raise ValidationError(
                "This server can't run Docker inside workspaces yet: it needs the Sysbox runtime on the host "
                "and WORKSPACE_DOCKER_RUNTIME=sysbox-runc in the portal's settings. Without it a container "
                "would need privileges that reach the host."
            )
        return can_docker

    def clean_is_staff(self) -> bool:
        is_staff: bool = self.cleaned_data["is_staff"]
        # Keeps at least the acting admin in charge: nobody locks themselves out by a click.
        if self.member.pk == self.actor.pk and not is_staff:
            raise ValidationError("You can't remove your own admin role. Ask another admin.")
        return is_staff


class SuspendForm(forms.Form):
    reason = forms.CharField(
        label="Reason (optional)",
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Kept in the audit log.",
    )
    confirm = forms.BooleanField(
        label="Yes, block their login and end their sessions now",
        error_messages={"required": "Tick the box to confirm the suspension."},
    )

    def __init__(self, data: Any = None, *, member: User, actor: User) -> None:
        self.member, self.actor = member, actor
        super().__init__(data)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # code="refused": the action itself is refused, not a value; the view redirects back.
        if self.member.pk == self.actor.pk:
            raise ValidationError("You can't suspend yourself. Ask another admin.", code="refused")
        if self.member.status == User.Status.SUSPENDED:
            raise ValidationError(f"{self.member} is already suspended.", code="refused")
        return data

    @property
    def refused(self) -> bool:
        return self.has_error(NON_FIELD_ERRORS, code="refused")


class MemberFilterForm(forms.Form):
    STATUS_CHOICES = [("", "All"), *User.Status.choices]

    status = forms.ChoiceField(choices=STATUS_CHOICES, required=False)
    q = forms.CharField(label="Search", required=False, max_length=100)

    def apply(self, members: QuerySet[User]) -> QuerySet[User]:
        """Filter by whatever is valid; an unknown status is ignored, not an error page."""
        if not self.is_bound:
            return members
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        if data.get("status"):
            members = members.filter(status=data["status"])
        if text := data.get("q", "").strip():
            members = members.filter(
                Q(username__icontains=text)
                | Q(email__icontains=text)
                | Q(first_name__icontains=text)
                | Q(last_name__icontains=text)
            )
        return members


class AuditFilterForm(forms.Form):
    OUTCOME_CHOICES = [("", "Any"), *AuditEvent.Outcome.choices]

    actor = forms.CharField(
        label="Actor", required=False, max_length=254, widget=forms.TextInput(attrs={"placeholder": "username"})
    )
    action = forms.CharField(
        label="Action",
        required=False,
        max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "starts with, e.g. member."}),
    )
    outcome = forms.ChoiceField(label="Outcome", choices=OUTCOME_CHOICES, required=False)
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(
        label="Target", required=False, max_length=254, widget=forms.TextInput(attrs={"placeholder": "contains"})
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return data

    def apply(self, events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        """Filter by the valid fields; invalid ones show their message and are skipped."""
        if not self.is_bound:
            return events
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        lookups = {
            "actor_label__iexact": data.get("actor", "").strip(),
            "action__startswith": data.get("action", "").strip(),
            "outcome": data.get("outcome"),
            "target_label__icontains": data.get("q", "").strip(),
        }
        events = events.filter(**{key: value for key, value in lookups.items() if value})
        if start := data.get("date_from"):
            events = events.filter(created__gte=_day_start(start))
        if end := data.get("date_to"):
            events = events.filter(created__lt=_day_start(end + dt.timedelta(days=1)))
        return events


def _day_start(day: dt.date) -> dt.datetime:
    # Days as the admin sees them: midnight in the portal's time zone.
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))
