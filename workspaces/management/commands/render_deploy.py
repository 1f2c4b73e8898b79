"""manage.py render_deploy [--target DIR]: Traefik's and cloudflared's files from .env."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workspaces.deploy import deploy_render


class Command(BaseCommand):
    help = "Write deploy/traefik/{traefik,dynamic}.yml and deploy/cloudflared/config.yml from the settings."
    requires_system_checks: list[str] = []  # runs before the database is up (compose's deploy-config)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--target", type=Path, default=Path(settings.BASE_DIR) / "deploy")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            written = deploy_render(target=options["target"])
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        for path in written:
            self.stdout.write(f"wrote {path}")
