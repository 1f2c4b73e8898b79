"""Create the break-glass admin on first start and print its password once."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from portal.models import Quota, User

USERNAME = "portaladmin"


class Command(BaseCommand):
    help = "Create the break-glass admin account if there is none, printing its password once."

    def handle(self, *args: Any, **options: Any) -> None:
        password_file = Path(settings.VAR_DIR) / "admin-password"
        if User.objects.filter(username=USERNAME).exists():
            hint = f" (first password saved in {password_file})" if password_file.exists() else ""
            self.stdout.write(f"Admin login: {USERNAME}{hint} at /login/admin/")
            return
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            user = User(
                username=USERNAME,
                email=f"{USERNAME}@{settings.PORTAL_DOMAIN}",
                status=User.Status.ACTIVE,
                is_staff=True,
                is_superuser=True,
                first_name="Admin",
            )
            user.set_password(password)
            user.save()
            Quota.objects.create(user=user, **Quota.team_defaults())
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        message = f"Created admin login: {USERNAME} / {password}  (sign in at /login/admin/)"
        self.stdout.write(self.style.SUCCESS(message))
