"""The synthetic demo clinic. Faker only: no real person's data is ever used.

`manage.py seed_demo` builds the foundation (clinics, staff of every role, patients at every pathway
stage, care teams) and then calls `seed(ctx)` in each app's `demo.py`, in DEMO_APPS order. Every
seeder is idempotent: run twice, it neither duplicates nor wipes anything.
"""

from __future__ import annotations

import datetime as dt
import importlib
import random
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from faker import Faker

from kapclinic.accounts.models import Clinic, Membership, Role, User
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.patients.models import (
    CareTeamMember,
    CareTeamRole,
    Diagnosis,
    Medication,
    PathwayStatus,
    Patient,
)
from kapclinic.patients.services import add_timeline_event, next_mrn

DEMO_PASSWORD = "demo-clinic-2026"
#: Order matters: sessions before measures, because a questionnaire response records how many dosing
#: sessions came before it when it is stored (its ``sessions_before``, behind "sessions to response").
#: The sessions demo stores the PHQ-9 answered before each session it seeds; the measures demo then
#: adds the baselines and the other follow-ups, dated among sessions that already exist.
DEMO_APPS = [
    "intake", "consent", "treatment", "scheduling", "sessions", "measures", "notes", "portal", "inventory",
    "documents",
    "billing",
    "fhirapi",
    "conversations",
]  # fmt: skip
#: Seed of the demo's Faker and random generators (``DemoContext.rng``, ``DemoContext.rng_for``).
DEMO_SEED = 2026

STAFF = [
    ("admin@demo.kapclinic.test", "Alex Admin", Role.ADMIN),
    ("prescriber@demo.kapclinic.test", "Dr. Priya Prescriber", Role.PRESCRIBER),
    ("therapist@demo.kapclinic.test", "Theo Therapist", Role.THERAPIST),
    ("therapist2@demo.kapclinic.test", "Tara Therapist", Role.THERAPIST),
    ("nurse@demo.kapclinic.test", "Nadia Nurse", Role.NURSE),
    ("frontdesk@demo.kapclinic.test", "Frankie Frontdesk", Role.FRONT_DESK),
]
PATIENT_LOGIN = "patient@demo.kapclinic.test"
OTHER_CLINIC_LOGIN = "prescriber@other.kapclinic.test"


@dataclass
class DemoContext:
    clinic: Clinic
    other_clinic: Clinic
    staff: dict[str, User]
    patients: list[Patient]
    demo_patient: Patient
    faker: Faker
    rng: random.Random
    actor: Actor
    extra: dict[str, Any] = field(default_factory=dict)
    seed: int = DEMO_SEED

    def rng_for(self, *keys: object) -> random.Random:
        """A generator of its own for one purpose (e.g. ``ctx.rng_for("course", patient.mrn)``): the
        same keys give the same numbers in every run, whichever seeders ran before or drew from
        ``rng``, so two seeders can agree on a plan without passing it around."""
        return random.Random(":".join([str(self.seed), *(str(k) for k in keys)]))

    def staff_actor(self, key: str) -> Actor:
        user = self.staff[key]
        role = Membership.objects.get(user=user, clinic=self.clinic).role
        return Actor(user=user, clinic=self.clinic, role=role, request_id="seed-demo")


def _user(email: str, name: str, password: str) -> User:
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email=email, full_name=name, password=password)
    return user


STAGES = [
    (PathwayStatus.INQUIRY, 6),
    (PathwayStatus.ASSESSMENT, 8),
    (PathwayStatus.ACTIVE, 16),
    (PathwayStatus.MAINTENANCE, 8),
    (PathwayStatus.DISCHARGED, 6),
]
DX = [
    ("F33.1", "310496002", "Major depressive disorder, recurrent, moderate"),
    ("F41.1", "21897009", "Generalized anxiety disorder"),
    ("F43.10", "47505003", "Post-traumatic stress disorder, unspecified"),
]


def build_foundation(stdout: Any = None) -> DemoContext:
    faker = Faker("en_US")
    faker.seed_instance(DEMO_SEED)
    rng = random.Random(DEMO_SEED)
    with transaction.atomic():
        clinic, _ = Clinic.objects.get_or_create(
            slug="harbor-kap",
            defaults={
                "name": "Harbor Ketamine-Assisted Therapy",
                "phone": "(555) 010-2040",
                "email": "hello@harbor-kap.test",
                "address": "200 Example Street, Suite 3\nPortland, OR 97201",
                "hours": "Monday to Friday, 8:00 to 18:00",
                "time_zone": "America/Los_Angeles",
                "is_public": True,
            },
        )
        other, _ = Clinic.objects.get_or_create(
            slug="summit-kap",
            defaults={"name": "Summit KAP Center", "phone": "(555) 010-9090", "address": "9 Other Road"},
        )
        staff: dict[str, User] = {}
        for email, name, role in STAFF:
            user = _user(email, name, DEMO_PASSWORD)
            Membership.objects.get_or_create(user=user, clinic=clinic, defaults={"role": role})
            staff[email.split("@")[0]] = user
        other_user = _user(OTHER_CLINIC_LOGIN, "Dr. Omar Other", DEMO_PASSWORD)
        Membership.objects.get_or_create(user=other_user, clinic=other, defaults={"role": Role.PRESCRIBER})
        # The prescriber also works one day a week at the second clinic: a multi-clinic membership.
        Membership.objects.get_or_create(
            user=staff["prescriber"], clinic=other, defaults={"role": Role.PRESCRIBER}
        )
        # Each clinic names its on-call prescriber: safety alerts of a patient without a care team, and
        # escalations, go to them (and no patient can be enrolled before one is named).
        Clinic.objects.filter(pk=clinic.pk, on_call_prescriber__isnull=True).update(
            on_call_prescriber=staff["prescriber"]
        )
        Clinic.objects.filter(pk=other.pk, on_call_prescriber__isnull=True).update(
            on_call_prescriber=other_user
        )
        clinic.refresh_from_db()
        other.refresh_from_db()
        actor = Actor(user=staff["admin"], clinic=clinic, role=Role.ADMIN, request_id="seed-demo")

        if not Patient.objects.filter(clinic=clinic).exists():
            _create_patients(clinic, other, staff, faker, rng)
        patients = list(Patient.objects.filter(clinic=clinic).order_by("id"))
        demo_patient = Patient.objects.get(user__email=PATIENT_LOGIN)
    return DemoContext(clinic, other, staff, patients, demo_patient, faker, rng, actor)


def _create_patients(
    clinic: Clinic, other: Clinic, staff: dict[str, User], faker: Faker, rng: random.Random
) -> None:
    now = clock.now()
    first = True
    for stage, count in STAGES:
        for _ in range(count):
            sex = rng.choice(["female", "male", "female", "male", "intersex"])
            first_name = faker.first_name_female() if sex == "female" else faker.first_name_male()
            user = None
            if first and stage == PathwayStatus.ACTIVE:
                user = _user(PATIENT_LOGIN, f"{first_name} Demo", DEMO_PASSWORD)
                first = False
            created = now - dt.timedelta(days=rng.randint(10, 200))
            patient = Patient.objects.create(
                clinic=clinic,
                user=user,
                mrn=next_mrn(clinic.pk),
                legal_first_name=first_name,
                legal_last_name="Demo" if user else faker.last_name(),
                preferred_name=rng.choice(["", "", "", faker.first_name()]),
                pronouns=rng.choice(["she/her", "he/him", "they/them", ""]),
                date_of_birth=faker.date_of_birth(minimum_age=19, maximum_age=75),
                sex_at_birth=sex,
                gender_identity=rng.choice(["", "Woman", "Man", "Non-binary"]),
                email=user.email if user else faker.safe_email(),
                phone=faker.numerify("(555) 01#-####"),
                address=faker.address(),
                emergency_contact_name=faker.name(),
                emergency_contact_relationship=rng.choice(["Partner", "Parent", "Sibling", "Friend"]),
                emergency_contact_phone=faker.numerify("(555) 01#-####"),
                pathway_status=stage,
                created_at=created,
            )
            add_timeline_event(
                patient, kind="patient.created", title="Record opened", category="admin", at=created
            )
            if stage != PathwayStatus.INQUIRY:
                therapist = staff["therapist"] if (user or rng.random() < 0.6) else staff["therapist2"]
                CareTeamMember.objects.create(
                    patient=patient, user=staff["prescriber"], role=CareTeamRole.PRESCRIBER
                )
                CareTeamMember.objects.create(patient=patient, user=therapist, role=CareTeamRole.THERAPIST)
                icd, snomed, desc = rng.choice(DX) if not user else DX[0]
                Diagnosis.objects.create(
                    patient=patient,
                    icd10=icd,
                    snomed=snomed,
                    description=desc,
                    recorded_by=staff["prescriber"],
                )
                if rng.random() < 0.3:
                    Medication.objects.create(
                        patient=patient,
                        name=rng.choice(["Sertraline", "Escitalopram", "Bupropion"]),
                        dose="",
                        drug_class="antidepressant",
                        recorded_by=staff["prescriber"],
                    )
    # A handful of patients in the second clinic, to show that nothing crosses clinic lines.
    for _ in range(3):
        Patient.objects.create(
            clinic=other,
            mrn=next_mrn(other.pk),
            legal_first_name=faker.first_name(),
            legal_last_name=faker.last_name(),
            date_of_birth=faker.date_of_birth(minimum_age=19, maximum_age=75),
            pathway_status=PathwayStatus.ASSESSMENT,
        )


def run_app_seeders(ctx: DemoContext, stdout: Any = None) -> list[str]:
    ran = []
    for app in DEMO_APPS:
        try:
            module = importlib.import_module(f"kapclinic.{app}.demo")
        except ModuleNotFoundError as exc:
            if exc.name == f"kapclinic.{app}.demo":
                continue
            raise
        with transaction.atomic():
            module.seed(ctx)
        ran.append(app)
    return ran
