"""The form of the Servers page: a GPU server's name, Docker endpoint, queue and SSH address,
with messages that say what a good value looks like."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from portal.hosts import LOCAL, default_queue
from portal.models import Host

NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,62}")
# A Celery queue a worker is started with (-Q): no commas (the list separator) and nothing a
# shell or a compose file would read twice.
QUEUE_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")


class HostForm(forms.ModelForm):  # type: ignore[type-arg]
    # Declared here so a bad name gets clean_name's words, not the model pattern's "Enter a valid value."
    name = forms.CharField(max_length=63)

    class Meta:
        model = Host
        fields = ["name", "docker_url", "queue", "ssh_address"]
        labels = {"docker_url": "Docker endpoint", "queue": "Celery queue"}
        help_texts = {"queue": "Empty: host.<name>. The server's worker takes this queue only."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].help_text = "Lowercase letters, digits and -, starting with a letter, like gpu2."
        self.fields["queue"].required = False
        self.fields["docker_url"].widget.attrs["placeholder"] = "ssh://portal@gpu2.corp.example"
        self.fields["ssh_address"].widget.attrs["placeholder"] = "gpu2.corp.example"
        if self.instance.pk and self.instance.name == LOCAL:
            # The portal's own worker is started with -Q portal,host.local (docker-compose.yml).
            for name in ("name", "queue"):
                self.fields[name].disabled = True
                self.fields[name].help_text = "The local server's name and queue are fixed: the portal runs there."

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not NAME_RE.fullmatch(name):
            raise ValidationError(
                f"“{name}” is not a server name: lowercase letters, digits and -, starting with a letter, "
                "at most 63, like gpu2."
            )
        taken = Host.objects.filter(name=name).exclude(pk=self.instance.pk).exists()
        if taken:
            raise ValidationError(f"There is already a server called {name}.")
        return name

    def clean_queue(self) -> str:
        queue: str = self.cleaned_data["queue"].strip()
        if queue and not QUEUE_RE.fullmatch(queue):
            raise ValidationError(
                f"“{queue}” is not a queue name: lowercase letters, digits, ., _ and -, like host.gpu2."
            )
        return queue

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        name = cleaned.get("name")
        if name is None or "queue" in self.errors:
            return cleaned
        queue = cleaned.get("queue") or default_queue(name)
        if queue == settings.CELERY_TASK_DEFAULT_QUEUE:
            self.add_error("queue", f"{queue} is the portal's own queue; a server needs one of its own.")
        elif owner := Host.objects.filter(queue=queue).exclude(pk=self.instance.pk).first():
            self.add_error("queue", f"The queue {queue} is already {owner.name}'s. Each server's worker needs its own.")
        return cleaned

    def validate_unique(self) -> None:
        # clean_name and clean() said it in words; the model's unique checks would say it again.
        return

    def values(self) -> dict[str, Any]:
        return {field: self.cleaned_data[field] for field in self.Meta.fields if field not in self._disabled()}

    def _disabled(self) -> set[str]:
        return {name for name, field in self.fields.items() if field.disabled}
