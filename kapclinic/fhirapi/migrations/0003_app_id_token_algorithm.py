"""Apps registered before `openid` id_tokens: sign their id_tokens RS256 (docs/fhir-api.md#openid)."""

from typing import Any

from django.db import migrations


def forwards(apps: Any, schema_editor: Any) -> None:
    FhirClient = apps.get_model("fhirapi", "FhirClient")
    Application = apps.get_model("oauth2_provider", "Application")
    app_ids = FhirClient.objects.filter(kind="app").values("application_id")
    Application.objects.filter(pk__in=app_ids, algorithm="").update(algorithm="RS256")


class Migration(migrations.Migration):
    dependencies = [
        ("fhirapi", "0002_fhir_export_jobs"),
        ("oauth2_provider", "0004_auto_20200902_2022"),  # adds Application.algorithm
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
