from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from portal.models import User


@receiver(user_logged_in)
def _activate_on_first_login(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    from portal.services import member_activate

    member_activate(user=user)
