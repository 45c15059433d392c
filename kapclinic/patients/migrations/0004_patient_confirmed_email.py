from django.db import migrations, models
from django.db.models import F


def copy_email(apps, schema_editor):
    # Existing records: the address on file now is taken as the confirmed one (there is no older fact).
    apps.get_model("patients", "Patient").objects.update(confirmed_email=F("email"))


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0003_patient_search_pattern_ops"),
    ]

    operations = [
        migrations.AddField(
            model_name="patient",
            name="confirmed_email",
            field=models.EmailField(blank=True, editable=False, max_length=254),
        ),
        migrations.RunPython(copy_email, migrations.RunPython.noop),
    ]
