"""The plain booking form of the calendar page (it works without JavaScript) and the booking
policy form of the Policies page."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django import forms
from django.template.defaultfilters import pluralize
from django.utils import timezone

from gpus.models import GPU, BookingPolicy
from portal.models import Host, User

ANY = "n"  # "n:2": any two free GPUs
ONE = "i"  # "i:1": GPU 1 and no other


def gpu_choices(gpus: list[GPU], allowed: int) -> list[tuple[str, str]]:
    """ "Any free GPU", "Any 2 free GPUs" … up to the member's quota, then each GPU by name."""
    most = max(1, min(len(gpus), allowed))
    counts = [(f"{ANY}:{n}", "Any free GPU" if n == 1 else f"Any {n} free GPUs") for n in range(1, most + 1)]
    return counts + [(f"{ONE}:{gpu.index}", f"{gpu.label} only ({gpu.name})") for gpu in gpus]


def parse_gpus(value: str) -> tuple[int | None, list[int] | None]:
    """(count, None) or (None, [index]) from a gpu_choices value."""
    kind, _, number = value.partition(":")
    if kind not in (ANY, ONE) or not number.isdigit():
        raise forms.ValidationError("Pick how many GPUs, or which one.")
    return (int(number), None) if kind == ANY else (None, [int(number)])


def team_moment(day: date, clock: time) -> datetime:
    """``day`` at ``clock`` in the team's time zone; a time the clocks skip doesn't exist."""
    naive = datetime.combine(day, clock)
    aware = timezone.make_aware(naive)
    # Through UTC and back: a skipped 02:30 comes back as 03:30 (astimezone into its own zone would keep it).
    if timezone.localtime(aware.astimezone(UTC)).replace(tzinfo=None) != naive:
        raise forms.ValidationError(
            f"{clock:%H:%M} doesn't exist on {day:%-d %b %Y}: the clocks go forward then. Pick a time after the change."
        )
    return aware


class BookingForm(forms.Form):
    """Book GPUs on the grid without the calendar: a day, a start and an end in the team's
    time zone. An end at or before the start is on the next day unless an end date says otherwise."""

    host = forms.ChoiceField(label="Server")
    gpus = forms.ChoiceField(label="GPUs")
    date = forms.DateField(label="Date", widget=forms.DateInput(attrs={"type": "date"}))
    start = forms.TimeField(label="From", widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    end = forms.TimeField(label="Until", widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    end_date = forms.DateField(
        label="Until date",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Only for a booking that ends on a later day; an end before the start means the next day.",
    )
    shared = forms.BooleanField(
        label="Shared",
        required=False,
        help_text="Shared means time-slicing: the GPU runs other members' jobs at the same time and there is "
        "no memory isolation, so one job can take all of its memory.",
    )
    note = forms.CharField(label="Note", max_length=200, required=False, help_text="What it is for (optional).")

    def __init__(
        self,
        *args: Any,
        hosts: list[Host],
        gpus: list[GPU],
        allowed: int,
        policy: BookingPolicy,
        staff: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if staff:
            self.fields["member"] = forms.ModelChoiceField(
                label="For member",
                queryset=User.objects.filter(is_active=True).order_by("username"),
                to_field_name="username",
                required=False,
                empty_label="myself",
                help_text="Admins may book for a member; the booking is theirs, and the audit log names you.",
            )
            self.fields["override"] = forms.BooleanField(
                label="Past the policy",
                required=False,
                help_text="Skips the limits (length, GPU-hours per week, how far ahead, notice, the member's "
                "quota), never another booking. Audited.",
            )
        self.policy = policy
        self.fields["host"].choices = [(str(host.pk), host.name) for host in hosts]  # type: ignore[attr-defined]  # a ChoiceField; the stubs say Field
        self.fields["gpus"].choices = gpu_choices(gpus, allowed)  # type: ignore[attr-defined]  # a ChoiceField
        step = str(policy.slot_minutes * 60)
        for name in ("start", "end"):
            self.fields[name].widget.attrs["step"] = step
        self.fields["start"].help_text = f"On the {policy.slot_minutes}-minute grid, in the team's time zone."
        if not policy.sharing:
            del self.fields["shared"]
        self.hosts = {str(host.pk): host for host in hosts}

    def clean_host(self) -> Host:
        return self.hosts[self.cleaned_data["host"]]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        data["count"], data["gpu_indexes"] = parse_gpus(data["gpus"])
        try:
            data["start_at"] = team_moment(data["date"], data["start"])
        except forms.ValidationError as error:
            self.add_error("start", error)
            return data
        end_day = data.get("end_date") or data["date"]
        if not data.get("end_date") and data["end"] <= data["start"]:
            end_day = data["date"] + timedelta(days=1)
        try:
            data["end_at"] = team_moment(end_day, data["end"])
        except forms.ValidationError as error:
            self.add_error("end", error)
        return data


POLICY_HELP = {
    "slot_minutes": "Bookings start and end on this grid (the calendar's rows); changing it leaves existing "
    "bookings as they are.",
    "max_booking_hours": "No single booking may last longer than this.",
    "max_hours_per_week": "How many GPU-hours one member may book in a week (Monday to Sunday in the team's time "
    "zone); a two-GPU booking of 4 hours counts 8. Cancelled bookings don't count.",
    "horizon_days": "How far in the future a booking may start.",
    "min_notice_minutes": "How long before its start a booking must be made; 0 lets members book from the "
    "current slot on.",
    "shared_slots": "0 allows only exclusive bookings. 2 or more lets that many members share one GPU by "
    "time-slicing: no memory isolation, one member can take all of its memory.",
    "noshow_minutes": "A booking nobody has used this long after its start is a no-show (only where GPU use is "
    "measured, on hosts read through NVML).",
    "noshow_release": "On: a no-show's GPUs are given back so others can book them. Off: the holder is only told.",
    "idle_percent": "A booked GPU whose utilisation stays below this counts as idle.",
    "idle_minutes": "How long a booked GPU must stay idle before its holder is warned.",
    "idle_release": "On: after the warning and another idle period of the same length, the rest of the booking "
    "is released. Off: the holder is only told.",
}


class BookingPolicyForm(forms.ModelForm):
    """The team's booking rules (the single BookingPolicy row)."""

    class Meta:
        model = BookingPolicy
        fields = list(POLICY_HELP)
        help_texts = POLICY_HELP

    def clean_shared_slots(self) -> int:
        slots: int = self.cleaned_data["shared_slots"]
        if slots == 1:
            raise forms.ValidationError(
                "1 would share a GPU with nobody: use 0 for exclusive bookings only, or 2 or more to share."
            )
        return slots

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        notice, horizon = data.get("min_notice_minutes"), data.get("horizon_days")
        if notice is not None and horizon is not None and notice >= horizon * 24 * 60:
            self.add_error(
                "min_notice_minutes",
                f"A notice of {notice} minutes leaves no time to book within {horizon} "
                f"day{pluralize(horizon)}; make it shorter or book further ahead.",
            )
        return data
