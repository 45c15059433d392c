"""Append-only, hash-chained audit trail.

Each clinic has its own chain (chain 0 holds events with no clinic, such as failed logins). Every event
stores the hash of the previous event of its chain and its own hash over its content, so altering or
removing a row breaks the chain at that point; `manage.py audit_verify` finds the first broken link.
The application cannot change or delete events: the model and queryset refuse, and database triggers
(see migrations) refuse UPDATE and DELETE from any client.

The hash is an HMAC-SHA256 under AUDIT_CHAIN_KEY (kapclinic/audit/keys.py), a secret that is not in the
database, and `key_id` names the key: whoever can write to the database but does not hold the key cannot
recompute hashes that verify. Events written before keying (`key_id` empty, "legacy") carry a plain
SHA-256; they verify only as the start of a chain sealed by a keyed event after them (see
services.verify_chains). Signed checkpoints published outside the database (kapclinic/audit/checkpoints.py)
catch what a chain alone cannot: removed newest events and a removed chain.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

from django.conf import settings
from django.db import models

GENESIS = "0" * 64


def canonical_data(data: Any) -> str:
    """The text of an event's `data` the hash covers: JSON with sorted keys, the same whichever database
    stored it (PostgreSQL's jsonb reorders keys)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class AuditAction(models.TextChoices):
    VIEW = "view", "Viewed"
    LIST = "list", "Listed"
    CREATE = "create", "Created"
    UPDATE = "update", "Changed"
    SIGN = "sign", "Signed"
    EXPORT = "export", "Exported"
    DENIED = "denied", "Refused access"
    LOGIN = "login", "Logged in"
    LOGIN_FAILED = "login_failed", "Failed login"
    LOGOUT = "logout", "Logged out"
    ADMIN = "admin", "Administration"


class AppendOnlyQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise PermissionError("Audit events cannot be changed.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("Audit events cannot be deleted.")


class AuditEvent(models.Model):
    chain = models.BigIntegerField()
    seq = models.BigIntegerField()
    at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_role = models.CharField(max_length=20, blank=True)
    clinic = models.ForeignKey(
        "accounts.Clinic", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    patient = models.ForeignKey(
        "patients.Patient", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    action = models.CharField(max_length=20, choices=AuditAction.choices)
    object_type = models.CharField(max_length=60, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    ip = models.CharField(max_length=64, blank=True)
    detail = models.CharField(max_length=200, blank=True, help_text="Never patient data.")
    name = models.CharField(
        max_length=80, blank=True, help_text="Namespaced action, e.g. session.transition or patient.update."
    )
    data = models.JSONField(
        default=dict,
        blank=True,
        help_text="Codes, counts and the old and new values of changed fields; never note text or secrets.",
    )
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    key_id = models.CharField(
        max_length=16, blank=True, help_text="AUDIT_CHAIN_KEY entry id; empty = legacy (unkeyed SHA-256)."
    )

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        constraints: ClassVar = [models.UniqueConstraint(fields=["chain", "seq"], name="audit_chain_seq")]
        indexes: ClassVar = [
            models.Index(fields=["clinic", "-id"], name="audit_clinic_recent"),
            models.Index(fields=["patient", "-id"], name="audit_patient_recent"),
            models.Index(fields=["actor", "-id"], name="audit_actor_recent"),
        ]

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("Audit events cannot be deleted.")

    def payload(self) -> str:
        """The canonical text that the hash covers: every column but its own hash and key id.

        Events written before `name` and `data` existed have both empty and keep their original payload
        (so they still verify); an event with either carries both at the end."""
        fields: list[Any] = [
            self.chain,
            self.seq,
            self.at.isoformat(timespec="microseconds"),
            self.actor_id,
            self.actor_role,
            self.clinic_id,
            self.patient_id,
            self.action,
            self.object_type,
            self.object_id,
            self.request_id,
            self.ip,
            self.detail,
            self.prev_hash,
        ]
        if self.name or self.data:
            fields += [self.name, canonical_data(self.data)]
        return json.dumps(fields, separators=(",", ":"))

    def compute_hash(self) -> str:
        """HMAC-SHA256 of the payload under the key named by `key_id` (plain SHA-256 for legacy events).

        Raises LookupError when `key_id` names a key that is not in AUDIT_CHAIN_KEY."""
        from kapclinic.audit import keys

        if not self.key_id:
            return hashlib.sha256(self.payload().encode()).hexdigest()
        secret = keys.key_by_id(self.key_id)
        if secret is None:
            raise LookupError(self.key_id)
        return keys.mac(secret, self.payload())


class AuditChainHead(models.Model):
    """The last sequence number and hash of each chain; locked while an event is appended."""

    chain = models.BigIntegerField(primary_key=True)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS)
