from __future__ import annotations

from django.db import migrations, models


def fill_dns_label(apps, schema_editor):  # type: ignore[no-untyped-def]
    User = apps.get_model("portal", "User")
    for user in User.objects.all():
        user.dns_label = user.username.replace("_", "-")
        user.save(update_fields=["dns_label"])


class Migration(migrations.Migration):
    dependencies = [("portal", "0002_default_host")]
    operations = [
        migrations.AddField(
            model_name="user", name="dns_label", field=models.CharField(editable=False, max_length=32, null=True)
        ),
        migrations.RunPython(fill_dns_label, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="user",
            name="dns_label",
            field=models.CharField(editable=False, max_length=32, unique=True),
        ),
    ]
