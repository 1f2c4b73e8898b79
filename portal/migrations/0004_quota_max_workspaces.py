from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("portal", "0003_user_dns_label")]
    operations = [
        migrations.AddField(
            model_name="quota",
            name="max_workspaces",
            field=models.PositiveSmallIntegerField(
                default=1,
                help_text="The default workspace counts; more allows extra named ones.",
                verbose_name="max workspaces",
            ),
        ),
    ]
