"""The production image runs collectstatic with whitenoise's manifest storage, which rewrites
every url() and sourceMappingURL and refuses a file it cannot find: a vendored library whose
source map was left behind broke the image build. Run it here the way the image does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management import call_command


def test_collectstatic_with_the_production_storage_finds_every_referenced_file(tmp_path: Path, settings: Any) -> None:
    settings.STATIC_ROOT = tmp_path / "staticfiles"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    call_command("collectstatic", "--noinput", verbosity=0)
    manifest = (tmp_path / "staticfiles" / "staticfiles.json").read_text()
    assert "vendor/chartjs/chart.umd.min.js.map" in manifest
    assert "vendor/fullcalendar/fullcalendar.global.js" in manifest
