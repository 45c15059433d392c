"""`seed_scale`: a deterministic, multi-clinic synthetic history at clinic scale.

The foundation (clinics, staff, patients, care teams, diagnoses, medications, allergies, portal
accounts, timeline, hash-chained audit trail) is always generated. Each other domain is a `Domain`
in kapclinic.benchdata.domains with the models it needs; it runs when those tables exist and is
reported as skipped otherwise, so the seed grows with the apps.

Patients are processed in chunks, one transaction each: memory stays flat whatever N is.

Over 600 lines: the one seed_scale pipeline, step by step; synthetic data only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from io import TextIOBase
from typing import Any, TextIO, cast

from django.contrib.auth.hashers import make_password
from django.db import connection, transaction
from faker import Faker

from kapclinic.accounts.models import Clinic, Membership, Role, User
from kapclinic.audit import keys
from kapclinic.audit.models import GENESIS, AuditChainHead, AuditEvent
from kapclinic.audit.services import default_name
from kapclinic.benchdata.loader import BulkLoader, missing_tables, tune_connection_for_load
from kapclinic.benchdata.plan import PatientPlan, build_plan
from kapclinic.core import clock
from kapclinic.patients.models import (
    Allergy,
    CareTeamMember,
    CareTeamRole,
    Diagnosis,
    Medication,
    Patient,
    TimelineEvent,
)

SCALE_VERSION = "5"  # bump when the generated data changes shape (invalidates bench caches)
BENCH_PASSWORD = "bench-clinic-2026"
BENCH_DOMAIN = "scale.kapclinic.test"
MARKER_SLUG = "scale-01"
BENCH_ROLES = (Role.ADMIN, Role.PRESCRIBER, Role.THERAPIST, Role.NURSE, Role.FRONT_DESK)

# Diagnoses: the codes of the demo clinic, from kapclinic.clinical.terminology ([S66] ref §5.3).
DX = [
    ("F33.1", "310496002", "Major depressive disorder, recurrent, moderate"),
    ("F41.1", "21897009", "Generalized anxiety disorder"),
    ("F43.10", "47505003", "Post-traumatic stress disorder, unspecified"),
]
MEDS = [
    ("Sertraline", "antidepressant"),
    ("Escitalopram", "antidepressant"),
    ("Bupropion", "antidepressant"),
    ("Venlafaxine", "antidepressant"),
    ("Lorazepam", "benzodiazepine"),
    ("Trazodone", "sedative"),
]
ALLERGENS = [("Penicillin", "Rash"), ("Latex", "Hives"), ("Sulfonamides", ""), ("Peanuts", "Swelling")]


def clinic_shares(n_patients: int) -> list[float]:
    """The first clinic (where the benchmark users work) holds half of all patients; the rest is
    spread over the other clinics of the shared deployment."""
    n = max(2, min(8, n_patients // 5000))
    rest = 0.5 / (n - 1)
    return [0.5] + [rest] * (n - 1)


@dataclass
class ClinicInfo:
    index: int
    clinic: Clinic
    staff: dict[str, list[int]] = field(default_factory=dict)
    chain_seq: int = 0
    chain_hash: str = GENESIS
    mrn: int = 0

    @property
    def pk(self) -> int:
        return int(self.clinic.pk)

    def pick(self, role: str, rng: random.Random) -> int:
        return rng.choice(self.staff[role])


class _Ev:
    """Just enough of an AuditEvent for its payload/compute_hash methods (which we reuse so the
    chain is exactly what `audit_verify` recomputes)."""

    payload = AuditEvent.payload
    hash: str

    def compute_hash(self) -> str:
        return AuditEvent.compute_hash(cast(AuditEvent, self))

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


class AuditWriter:
    def __init__(self, ctx: ScaleContext) -> None:
        self.ctx = ctx
        self.pending: dict[int, list[tuple[Any, ...]]] = {}

    def add(
        self,
        plan: PatientPlan | None,
        at: dt.datetime,
        actor_id: int | None,
        role: str,
        action: str,
        *,
        clinic_index: int | None = None,
        object_type: str = "",
        object_id: Any = "",
        detail: str = "",
    ) -> None:
        ci = plan.clinic_index if plan is not None else (clinic_index or 0)
        self.pending.setdefault(ci, []).append(
            (at, actor_id, role, action, plan.pk if plan else None, object_type, str(object_id), detail)
        )

    def flush_to_loader(self) -> None:
        key_id, secret = keys.signing_key()
        for ci, events in self.pending.items():
            info = self.ctx.clinics[ci]
            events.sort(key=lambda e: e[0])
            for at, actor_id, role, action, patient_id, otype, oid, detail in events:
                info.chain_seq += 1
                ev = _Ev(
                    chain=info.pk,
                    seq=info.chain_seq,
                    at=at.astimezone(dt.UTC),
                    actor_id=actor_id,
                    actor_role=role,
                    clinic_id=info.pk,
                    patient_id=patient_id,
                    action=action,
                    object_type=otype,
                    object_id=oid,
                    request_id="seed-scale",
                    ip="",
                    detail=detail,
                    name=default_name(action, otype, about_patient=patient_id is not None),
                    data={},
                    prev_hash=info.chain_hash,
                    key_id=key_id,
                )
                ev.hash = keys.mac(secret, AuditEvent.payload(cast(AuditEvent, ev)))
                info.chain_hash = ev.hash
                self.ctx.loader.add(AuditEvent, **ev.__dict__)
        self.pending = {}

    def write_heads(self) -> None:
        for info in self.ctx.clinics:
            AuditChainHead.objects.update_or_create(
                chain=info.pk, defaults={"seq": info.chain_seq, "hash": info.chain_hash}
            )


@dataclass
class ScaleContext:
    n_patients: int
    seed: int
    now: dt.datetime
    loader: BulkLoader
    clinics: list[ClinicInfo]
    faker: Faker
    names: dict[str, list[str]]
    password_hash: str
    audit: AuditWriter = field(init=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.audit = AuditWriter(self)

    def timeline(
        self,
        plan: PatientPlan,
        at: dt.datetime,
        kind: str,
        title: str,
        *,
        category: str = "clinical",
        actor_id: int | None = None,
        ref: tuple[str, int] | None = None,
    ) -> None:
        self.loader.add(
            TimelineEvent,
            patient_id=plan.pk,
            at=at,
            kind=kind,
            category=category,
            title=title,
            actor_id=actor_id,
            ref_type=ref[0] if ref else "",
            ref_id=str(ref[1]) if ref else "",
        )


@dataclass(frozen=True)
class Domain:
    """One domain's bulk generator: `generate(ctx, plan, rng)` per patient; optional per-clinic setup."""

    name: str
    models: tuple[str, ...]
    generate: Callable[[ScaleContext, PatientPlan, random.Random], None]
    setup: Callable[[ScaleContext], None] | None = None


# --------------------------------------------------------------------------------------------------
# Foundation
# --------------------------------------------------------------------------------------------------


def _staff_counts(patients: int) -> dict[str, int]:
    return {
        "admin": 1,
        "prescriber": max(1, patients // 800),
        "therapist": max(2, patients // 100),
        "nurse": max(1, patients // 1000),
        "front_desk": max(1, patients // 2000),
    }


def _create_clinics(ctx: ScaleContext, shares: list[float]) -> None:
    faker = ctx.faker
    for i, share in enumerate(shares):
        slug = f"scale-{i + 1:02d}"
        clinic = Clinic.objects.create(
            slug=slug,
            name=f"{faker.city()} KAP Center ({slug})",
            phone=faker.numerify("(555) 01#-####"),
            address=faker.address(),
            hours="Monday to Friday, 8:00 to 18:00",
        )
        ctx.clinics.append(ClinicInfo(index=i, clinic=clinic))
        counts = _staff_counts(round(ctx.n_patients * share))
        for role, count in counts.items():
            ids = []
            for k in range(count):
                if i == 0 and k == 0:
                    email = f"bench-{role.replace('_', '')}@{BENCH_DOMAIN}"
                else:
                    email = f"{role.replace('_', '')}{k + 1}.{slug}@{BENCH_DOMAIN}"
                uid = ctx.loader.add(
                    User,
                    email=email,
                    full_name=f"{faker.first_name()} {faker.last_name()}",
                    password=ctx.password_hash,
                    date_joined=ctx.now - dt.timedelta(days=1100),
                )
                ctx.loader.add(Membership, user_id=uid, clinic_id=clinic.pk, role=role)
                ids.append(uid)
            ctx.clinics[i].staff[role] = ids
    # The benchmark prescriber also works at the second clinic (a multi-clinic membership).
    ctx.loader.add(
        Membership,
        user_id=ctx.clinics[0].staff["prescriber"][0],
        clinic_id=ctx.clinics[1].pk,
        role=Role.PRESCRIBER,
    )


def _name_pools(faker: Faker) -> dict[str, list[str]]:
    return {
        "female": [faker.first_name_female() for _ in range(600)],
        "male": [faker.first_name_male() for _ in range(600)],
        "last": [faker.last_name() for _ in range(1500)],
        "street": [faker.street_address() for _ in range(800)],
        "city": [f"{faker.city()}, {faker.state_abbr()} {faker.zipcode()}" for _ in range(300)],
        "person": [faker.name() for _ in range(800)],
    }


def _patient(ctx: ScaleContext, plan: PatientPlan, rng: random.Random, *, bench_patient: bool) -> None:
    info = ctx.clinics[plan.clinic_index]
    names = ctx.names
    sex = rng.choice(("female", "male", "female", "male", "intersex"))
    first = rng.choice(names["female"] if sex == "female" else names["male"])
    last = rng.choice(names["last"])
    info.mrn += 1
    email = f"patient{plan.pk}@{BENCH_DOMAIN}"
    if bench_patient:
        email = f"bench-patient@{BENCH_DOMAIN}"
    if bench_patient:
        plan.refs["bench_patient"] = True
    portal = bench_patient or (plan.status in ("active", "maintenance") and rng.random() < 0.7)
    if portal:
        plan.user_id = ctx.loader.add(
            User,
            email=email,
            full_name=f"{first} {last}",
            password=ctx.password_hash if bench_patient else "!unusable",
            date_joined=plan.opened_at,
        )
    born = plan.opened_at.date().replace(day=1) - dt.timedelta(days=rng.randint(19 * 365, 75 * 365))
    ctx.loader.add(
        Patient,
        id=plan.pk,
        clinic_id=info.pk,
        user_id=plan.user_id,
        mrn=f"S-{info.mrn:07d}",
        legal_first_name=first,
        legal_last_name=last,
        preferred_name=rng.choice(("", "", "", rng.choice(names["female"] + names["male"]))),
        pronouns=rng.choice(("she/her", "he/him", "they/them", "")),
        date_of_birth=born,
        sex_at_birth=sex,
        gender_identity=rng.choice(("", "Woman", "Man", "Non-binary")),
        email=email,
        phone=f"(555) 01{rng.randint(0, 9)}-{rng.randint(0, 9999):04d}",
        address=f"{rng.choice(names['street'])}\n{rng.choice(names['city'])}",
        emergency_contact_name=rng.choice(names["person"]),
        emergency_contact_relationship=rng.choice(("Partner", "Parent", "Sibling", "Friend")),
        emergency_contact_phone=f"(555) 01{rng.randint(0, 9)}-{rng.randint(0, 9999):04d}",
        pathway_status=plan.status,
        created_at=plan.opened_at,
        updated_at=plan.discharged_at or plan.opened_at,
        version=1,
    )
    desk = info.pick("front_desk", rng)
    ctx.audit.add(
        plan, plan.opened_at, desk, "front_desk", "create", object_type="patients.patient", object_id=plan.pk
    )
    ctx.timeline(plan, plan.opened_at, "patient.created", "Record opened", category="admin", actor_id=desk)
    if plan.status == "inquiry":
        return
    plan.prescriber_id = info.pick("prescriber", rng)
    plan.therapist_id = info.pick("therapist", rng)
    plan.nurse_id = info.pick("nurse", rng)
    added = plan.intake_at or plan.opened_at
    ctx.loader.add(
        CareTeamMember,
        patient_id=plan.pk,
        user_id=plan.prescriber_id,
        role=CareTeamRole.PRESCRIBER,
        added_at=added,
    )
    ctx.loader.add(
        CareTeamMember,
        patient_id=plan.pk,
        user_id=plan.therapist_id,
        role=CareTeamRole.THERAPIST,
        added_at=added,
    )
    if rng.random() < 0.3:
        ctx.loader.add(
            CareTeamMember, patient_id=plan.pk, user_id=plan.nurse_id, role=CareTeamRole.NURSE, added_at=added
        )
    ctx.audit.add(plan, added, desk, "front_desk", "update", object_type="care_team", detail="added=2")
    dx = [DX[0]] + ([DX[1]] if rng.random() < 0.5 else []) + ([DX[2]] if plan.trauma else [])
    for icd, snomed, desc in dx:
        did = ctx.loader.add(
            Diagnosis,
            patient_id=plan.pk,
            icd10=icd,
            snomed=snomed,
            description=desc,
            recorded_by_id=plan.prescriber_id,
            recorded_at=added,
        )
        ctx.audit.add(
            plan,
            added,
            plan.prescriber_id,
            "prescriber",
            "create",
            object_type="patients.diagnosis",
            object_id=did,
        )
    for name, drug_class in rng.sample(MEDS, rng.randint(0, 3)):
        ctx.loader.add(
            Medication,
            patient_id=plan.pk,
            name=name,
            dose="",
            drug_class=drug_class,
            active=rng.random() < 0.8,
            recorded_by_id=plan.prescriber_id,
            recorded_at=added,
        )
    if rng.random() < 0.2:
        substance, reaction = rng.choice(ALLERGENS)
        ctx.loader.add(
            Allergy, patient_id=plan.pk, substance=substance, reaction=reaction,
            recorded_by_id=plan.prescriber_id, recorded_at=added,
        )  # fmt: skip
    # Chart views by the care team on each encounter day (the bulk of a real audit trail).
    for visit in plan.dosing + plan.integration:
        if visit.done:
            therapist, nurse = (plan.therapist_id, Role.THERAPIST), (plan.nurse_id, Role.NURSE)
            who, role = therapist if rng.random() < 0.5 else nurse
            ctx.audit.add(
                plan,
                visit.at - dt.timedelta(minutes=10),
                who,
                role,
                "view",
                object_type="chart",
                object_id=plan.pk,
            )
    if plan.discharged_at:
        ctx.timeline(
            plan,
            plan.discharged_at,
            "patient.discharged",
            "Discharged from the programme",
            actor_id=plan.prescriber_id,
        )


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------


@dataclass
class SeedResult:
    patients: int
    seconds: float
    counts: dict[str, int]
    domains_run: list[str]
    domains_skipped: dict[str, str]
    peak_rss_mb: float


def already_seeded() -> bool:
    return Clinic.objects.filter(slug=MARKER_SLUG).exists()


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _probe(ctx: ScaleContext, domain: Domain, plan: PatientPlan) -> str | None:
    """Run a domain for one patient inside a savepoint that is rolled back: a domain whose code or
    schema is mid-change is skipped with the reason instead of breaking the whole seed."""
    import copy

    loader = BulkLoader()
    probe_ctx = copy.copy(ctx)
    probe_ctx.loader = loader
    probe_ctx.audit = AuditWriter(probe_ctx)
    probe_ctx.clinics = [copy.copy(c) for c in ctx.clinics]
    probe_ctx.extra = dict(ctx.extra)
    try:
        sid = transaction.savepoint()
        try:
            _patient(probe_ctx, plan, random.Random(0), bench_patient=False)
            if domain.setup:
                domain.setup(probe_ctx)
            domain.generate(probe_ctx, plan, random.Random(0))
            probe_ctx.audit.flush_to_loader()
            loader.flush()
        finally:
            transaction.savepoint_rollback(sid)
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    return None


def seed_scale(
    n_patients: int,
    *,
    seed: int = 7,
    chunk: int = 200,
    progress: bool = True,
    out: TextIO | TextIOBase | None = None,
    only: list[str] | None = None,
) -> SeedResult:
    from kapclinic.benchdata.domains import DOMAINS

    out = out or sys.stdout
    started = time.monotonic()
    # Relative to the current hour: the same seed gives the same rows within the hour (the dashboards
    # need "today" to be today, so the history cannot be pinned to a fixed date).
    now = clock.now().astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    faker = Faker("en_US")
    faker.seed_instance(seed)
    rng = random.Random(seed)
    tune_connection_for_load()
    loader = BulkLoader()
    ctx = ScaleContext(
        n_patients=n_patients,
        seed=seed,
        now=now,
        loader=loader,
        clinics=[],
        faker=faker,
        names=_name_pools(faker),
        password_hash=make_password(BENCH_PASSWORD),
    )
    with transaction.atomic():
        shares = clinic_shares(n_patients)
        _create_clinics(ctx, shares)
        loader.flush()

    # Each patient's clinic, and the benchmark patient: clinic 0 with a two-year maintenance history
    # (the portal's long-history case).
    clinic_of = [rng.choices(range(len(shares)), weights=shares)[0] for _ in range(n_patients)]
    bench_index = n_patients // 3
    clinic_of[bench_index] = 0

    patient_table = loader.table(Patient)
    skipped: dict[str, str] = {}
    domains = [d for d in DOMAINS if not only or d.name in only]
    first_plan = build_plan(patient_table.next_id, 0, random.Random(seed), now, long_history=True)
    active: list[Domain] = []
    for d in domains:
        missing = missing_tables(d.models)
        if missing:
            skipped[d.name] = "not available yet: " + "; ".join(missing)
            continue
        with transaction.atomic():
            problem = _probe(ctx, d, first_plan)
        if problem:
            skipped[d.name] = f"generator failed on a probe patient ({problem})"
            continue
        active.append(d)
    with transaction.atomic():
        for d in active:
            if d.setup:
                d.setup(ctx)
        loader.flush()

    def patient_rng(i: int) -> random.Random:
        return random.Random(seed * 1_000_003 + i)

    # Opening dates first (cheap), so record ids follow time as in a real practice.
    opened = [
        build_plan(0, clinic_of[i], patient_rng(i), now, long_history=(i == bench_index)).opened_at
        for i in range(n_patients)
    ]
    order = sorted(range(n_patients), key=opened.__getitem__)
    del opened

    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=n_patients, unit="patient", file=out, mininterval=1.0, dynamic_ncols=True)
        except ImportError:  # pragma: no cover - tqdm is a dev dependency
            bar = None
    done = 0
    for start in range(0, n_patients, chunk):
        batch = order[start : start + chunk]
        with transaction.atomic():
            for i in batch:
                prng = patient_rng(i)
                plan = build_plan(
                    patient_table.reserve_id(), clinic_of[i], prng, now, long_history=(i == bench_index)
                )
                _patient(ctx, plan, prng, bench_patient=(i == bench_index))
                for d in active:
                    d.generate(ctx, plan, prng)
            ctx.audit.flush_to_loader()
            loader.flush()
        done += len(batch)
        if bar is not None:
            bar.update(len(batch))
        elif progress:
            out.write(f"\r{done}/{n_patients} patients")
    if bar is not None:
        bar.close()
    with transaction.atomic():
        ctx.audit.write_heads()
        loader.finish()
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        with connection.cursor() as cur:
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return SeedResult(
        patients=n_patients,
        seconds=time.monotonic() - started,
        counts=loader.counts(),
        domains_run=["foundation", *[d.name for d in active]],
        domains_skipped=skipped,
        peak_rss_mb=_peak_rss_mb(),
    )


def fingerprint_text() -> str:
    """Cache key of a seeded benchmark database: the generator version and which domains have models.

    Schema changes that come with migrations do not need a new seed (bin/bench migrates the working
    copy); a domain whose models appear does, and so does a change of SCALE_VERSION."""
    from django.apps import apps

    from kapclinic.benchdata.domains import DOMAINS

    def installed(labels: tuple[str, ...]) -> bool:
        try:
            for label in labels:
                apps.get_model(label)
        except (LookupError, ValueError):
            return False
        return True

    ready = sorted(d.name for d in DOMAINS if installed(d.models))
    return hashlib.sha256(f"scale{SCALE_VERSION}|{','.join(ready)}".encode()).hexdigest()[:16]
