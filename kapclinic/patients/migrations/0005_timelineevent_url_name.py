from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0004_patient_confirmed_email"),
    ]

    operations = [
        migrations.AddField(
            model_name="timelineevent",
            name="url_name",
            field=models.CharField(blank=True, max_length=80),
        ),
        migrations.AddField(
            model_name="timelineevent",
            name="url_kwargs",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
