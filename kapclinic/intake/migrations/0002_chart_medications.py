"""One medication list: the assessment's own JSON list moves into the chart (patients.Medication).

Each old entry becomes an active chart medication (unless the chart already lists the same name); the
rule-set class becomes the chart class where one maps, and is kept as the assessment's confirmed
interaction class otherwise (e.g. a CYP modulator or a nasal steroid recorded as "other").
"""

from django.db import migrations, models

RULESET_TO_CHART = {
    "benzodiazepine": "benzodiazepine",
    "opioid": "opioid",
    "stimulant": "stimulant",
    "maoi": "maoi",
    "sedative_hypnotic": "sedative",
    "antidepressant": "antidepressant",
}


def move_to_chart(apps, schema_editor):
    Assessment = apps.get_model("intake", "Assessment")
    Medication = apps.get_model("patients", "Medication")
    Membership = apps.get_model("accounts", "Membership")
    for a in Assessment.objects.exclude(medications=[]).select_related("patient"):
        user_id = a.updated_by_id or (
            Membership.objects.filter(clinic_id=a.patient.clinic_id, role__in=["prescriber", "admin"])
            .values_list("user_id", flat=True)
            .first()
        )
        if user_id is None:
            continue
        classes = dict(a.medication_classes or {})
        existing = {
            n.casefold()
            for n in Medication.objects.filter(patient_id=a.patient_id, active=True).values_list("name", flat=True)
        }
        for entry in a.medications or []:
            name = str(entry.get("name", "")).strip()
            if not name or name.casefold() in existing:
                continue
            rs_class = str(entry.get("drug_class") or "other")
            chart_class = RULESET_TO_CHART.get(rs_class, "other")
            med = Medication.objects.create(
                patient_id=a.patient_id,
                name=name[:120],
                dose=str(entry.get("dose", ""))[:80],
                drug_class=chart_class,
                recorded_by_id=user_id,
            )
            existing.add(name.casefold())
            if chart_class in ("antidepressant", "other") and rs_class not in (chart_class, "other"):
                classes[str(med.pk)] = rs_class
        a.medication_classes = classes
        a.save(update_fields=["medication_classes"])


class Migration(migrations.Migration):
    dependencies = [
        ("intake", "0001_initial"),
        ("patients", "0001_initial"),
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="assessment",
            name="medication_classes",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="eligibilitydecision",
            name="medications_digest",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.RunPython(move_to_chart, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name="assessment",
            name="medications",
        ),
    ]
