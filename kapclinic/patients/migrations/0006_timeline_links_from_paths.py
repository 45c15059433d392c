"""Turn each timeline event's stored path into the URL name and kwargs it resolves to.

Resolving needs the URLconf of the code being deployed, which is the one whose names are stored, so
this reads the live URLconf (not a frozen copy). A path that no longer resolves was already a broken
link: it is dropped (the line stays, unlinked)."""

from django.db import migrations
from django.urls import NoReverseMatch, Resolver404, resolve, reverse

BATCH = 1000


def paths_to_names(apps, schema_editor):  # type: ignore[no-untyped-def]
    Event = apps.get_model("patients", "TimelineEvent")
    changed = []
    for event in Event.objects.exclude(url="").only("pk", "url").iterator(chunk_size=BATCH):
        try:
            match = resolve(event.url.split("?", 1)[0].split("#", 1)[0])
        except Resolver404:
            event.url_name, event.url_kwargs = "", {}
        else:
            event.url_name, event.url_kwargs = match.view_name, match.kwargs
        changed.append(event)
        if len(changed) >= BATCH:
            Event.objects.bulk_update(changed, ["url_name", "url_kwargs"])
            changed = []
    Event.objects.bulk_update(changed, ["url_name", "url_kwargs"])


def names_to_paths(apps, schema_editor):  # type: ignore[no-untyped-def]
    Event = apps.get_model("patients", "TimelineEvent")
    changed = []
    for event in Event.objects.exclude(url_name="").only("pk", "url_name", "url_kwargs").iterator(chunk_size=BATCH):
        try:
            event.url = reverse(event.url_name, kwargs=event.url_kwargs)
        except NoReverseMatch:
            event.url = ""
        changed.append(event)
        if len(changed) >= BATCH:
            Event.objects.bulk_update(changed, ["url"])
            changed = []
    Event.objects.bulk_update(changed, ["url"])


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0005_timelineevent_url_name"),
    ]

    operations = [
        migrations.RunPython(paths_to_names, names_to_paths, elidable=True),
    ]
