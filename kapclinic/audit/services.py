from __future__ import annotations

import datetime as dt
import decimal
import hmac
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, models, transaction

from kapclinic.audit import keys
from kapclinic.audit.models import GENESIS, AuditAction, AuditChainHead, AuditEvent
from kapclinic.core import clock
from kapclinic.core.actor import Actor

if TYPE_CHECKING:
    from kapclinic.patients.models import Patient


def _head_for_update(chain: int) -> AuditChainHead:
    try:
        return AuditChainHead.objects.select_for_update().get(chain=chain)
    except AuditChainHead.DoesNotExist:
        try:
            with transaction.atomic():
                AuditChainHead.objects.create(chain=chain, seq=0, hash=GENESIS)
        except IntegrityError:
            pass  # created concurrently
        return AuditChainHead.objects.select_for_update().get(chain=chain)


def record_event(
    actor: Actor,
    action: str,
    *,
    patient: Patient | None = None,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    detail: str = "",
    clinic: Any = None,
    name: str = "",
    data: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event. Call inside the transaction of the change it records.

    `action` is the kind of access (view, update, ...; the log's filter); `name` the namespaced action
    (`session.transition`, `patient.update`), by default the object's model and the kind
    (`appointment.update`). `data` holds codes, counts and, for a change, `field_changes(...)`: the old and
    new values of the changed fields, never note text or secrets. `detail` is a short code kept for
    events that predate `data`. The hash covers all of it.
    """
    if action not in AuditAction.values:
        raise ValueError(f"Unknown audit action {action!r}")
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
    if name:
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"Audit event names are dotted lowercase words, not {name!r}")
    else:
        name = default_name(action, object_type, about_patient=patient is not None)
    stored = _json_safe(dict(data or {}))
    clinic = clinic or (patient.clinic if patient is not None else actor.clinic)
    chain = clinic.pk if clinic is not None else 0
    key_id, secret = keys.signing_key()
    with transaction.atomic():
        head = _head_for_update(chain)
        event = AuditEvent(
            chain=chain,
            seq=head.seq + 1,
            at=clock.now().astimezone(dt.UTC),
            actor=actor.user,
            actor_role=actor.role or "",
            clinic=clinic,
            patient=patient,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            request_id=actor.request_id[:64],
            ip=actor.ip or "",
            detail=detail[:200],
            name=name,
            data=stored,
            prev_hash=head.hash,
            key_id=key_id,
        )
        event.hash = keys.mac(secret, event.payload())
        event.save(force_insert=True)
        AuditChainHead.objects.filter(chain=chain).update(seq=event.seq, hash=event.hash)
    return event


NAME_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
#: What an event with no object is about, by its kind.
_SUBJECTLESS = {"login": "account", "login_failed": "account", "logout": "account"}
#: A value longer than this is stored cut, and says so (an audit entry records who changed what, not a
#: second copy of long text).
MAX_VALUE_CHARS = 300


def default_name(action: str, object_type: str, *, about_patient: bool = False) -> str:
    """`appointment.update` for an update of a scheduling.appointment; `account.login` for a login;
    `patient.view` for an event about a patient with no object named."""
    noun = re.sub(r"[^a-z0-9_]+", "_", object_type.rsplit(".", 1)[-1].lower()).strip("_")
    if not noun or not noun[0].isalpha():
        noun = _SUBJECTLESS.get(action, "patient" if about_patient else "clinic")
    return f"{noun}.{action}"


def _value(value: Any) -> Any:
    """A field's value as the audit stores it: JSON types only, floats and Decimals as text (so the
    stored value and the hashed text agree on every database), long text cut with a mark."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | float | uuid.UUID):
        return str(value)
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, Mapping):
        return {str(k): _value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_value(v) for v in value]
    text = str(value)
    if len(text) > MAX_VALUE_CHARS:
        return f"{text[:MAX_VALUE_CHARS]}… (+{len(text) - MAX_VALUE_CHARS} characters)"
    return text


def _json_safe(data: dict[str, Any]) -> dict[str, Any]:
    safe: dict[str, Any] = json.loads(json.dumps(_value(data)))
    return safe


def field_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], *, secret: Iterable[str] = ()
) -> dict[str, dict[str, Any]]:
    """The fields whose value differs, each as {"old": ..., "new": ...}, for an event's `data`.

    A `secret` field (a password hash, a key, process-note text) is named with "changed" and no value."""
    hidden = set(secret)
    out: dict[str, dict[str, Any]] = {}
    for field in after:
        if field not in before or before[field] == after[field]:
            continue
        out[field] = {"changed": True} if field in hidden else {"old": before[field], "new": after[field]}
    return out


def verify_chains() -> list[str]:
    """Walk every chain; return a sentence for each chain's first broken link (empty list = intact).

    Keyed events must carry the HMAC of their content under the key their `key_id` names. Legacy
    (unkeyed, plain SHA-256) events are accepted only at the start of a chain and only when a keyed event
    follows them: that event's HMAC covers the last legacy hash, which covers every legacy event before it.
    A legacy event after a keyed one, or a chain whose events are all legacy, could have been written by
    anyone with database access and is reported.
    """
    problems: list[str] = []
    heads = {h.chain: h for h in AuditChainHead.objects.all()}
    chains = set(heads) | set(AuditEvent.objects.values_list("chain", flat=True).distinct())
    for chain in sorted(chains):
        prev_hash = GENESIS
        expected_seq = 1
        legacy = 0
        keyed = 0
        problem = ""
        for event in AuditEvent.objects.filter(chain=chain).order_by("seq").iterator(chunk_size=2000):
            where = f"Chain {chain}: event #{event.seq} (id {event.pk})"
            if event.seq != expected_seq:
                problem = (
                    f"Chain {chain}: event #{expected_seq} is missing "
                    f"(next stored event is #{event.seq}, id {event.pk})."
                )
            elif event.prev_hash != prev_hash:
                problem = f"{where} does not link to the event before it."
            elif not event.key_id and keyed:
                problem = (
                    f"{where} carries no key id although earlier events of its chain are keyed: "
                    "it was rewritten by someone without the audit key."
                )
            else:
                try:
                    expected = event.compute_hash()
                except LookupError:
                    problem = (
                        f"{where} was keyed with key id {event.key_id!r}, which is not in AUDIT_CHAIN_KEY: "
                        "add that key (after the current one) to verify it, or the event was forged."
                    )
                else:
                    if not hmac.compare_digest(expected, event.hash):
                        problem = f"{where} was altered after it was written."
            if problem:
                break
            if event.key_id:
                keyed += 1
            else:
                legacy += 1
            prev_hash = event.hash
            expected_seq += 1
        if problem:
            problems.append(problem)
            continue
        head = heads.get(chain)
        if head is not None and (head.seq != expected_seq - 1 or head.hash != prev_hash):
            problems.append(
                f"Chain {chain}: the newest event(s) after #{expected_seq - 1} were removed "
                f"(the chain head records #{head.seq})."
            )
        if legacy and not keyed:
            problems.append(
                f"Chain {chain}: its {legacy} event(s) are all legacy (unkeyed) and no keyed event seals "
                "them, so anyone with database access could have rewritten them. If this chain predates "
                "the audit key, run `manage.py audit_seal` once; otherwise it was rewritten."
            )
    return problems


def unsealed_legacy_chains() -> list[int]:
    """Chains whose newest event is a legacy (unkeyed) one."""
    chains = AuditEvent.objects.values_list("chain", flat=True).distinct()
    return sorted(
        chain
        for chain in chains
        if not AuditEvent.objects.filter(chain=chain).order_by("-seq").values_list("key_id", flat=True)[0]
    )


@transaction.atomic
def seal_legacy_chains() -> list[int]:
    """Append one keyed "admin" event (detail `audit.seal`) to every chain that ends with legacy events.

    For the upgrade to a keyed chain only: its HMAC covers the last legacy hash and so every legacy event
    before it. Returns the sealed chain ids."""
    from kapclinic.accounts.models import Clinic

    sealed = unsealed_legacy_chains()
    clinics = Clinic.objects.in_bulk([c for c in sealed if c])
    for chain in sealed:
        clinic = clinics.get(chain)
        if chain and clinic is None:
            continue  # a chain is numbered after its clinic, which cannot be deleted (PROTECT)
        record_event(
            Actor.system(clinic, reason="audit_seal"),
            AuditAction.ADMIN,
            object_type="audit.chain",
            object_id=chain,
            detail="audit.seal",
            clinic=clinic,
        )
    return sealed
