from __future__ import annotations

from django.db import migrations


def create_local_host(apps, schema_editor):  # type: ignore[no-untyped-def]
    Host = apps.get_model("portal", "Host")
    Host.objects.get_or_create(name="local", defaults={"queue": "host.local"})


class Migration(migrations.Migration):
    dependencies = [("portal", "0001_initial")]
    operations = [migrations.RunPython(create_local_host, migrations.RunPython.noop)]
