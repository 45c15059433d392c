from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0006_timeline_links_from_paths"),
    ]

    operations = [
        migrations.RemoveField(model_name="timelineevent", name="url"),
    ]
