"""System checks of the audit trail's protection: the chain key (audit.E001/E002), where checkpoints go
(audit.W004) and the database role the app connects as (audit.W001-W003; README "Audit trail")."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.db import connection

AUDIT_TABLE = "audit_auditevent"


@register()
def audit_chain_key(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from kapclinic.audit.keys import key_problems

    raw = list(getattr(settings, "AUDIT_CHAIN_KEY", []) or [])
    errors: list[CheckMessage] = [Error(p, id="audit.E002") for p in key_problems(raw)]
    if not raw and getattr(settings, "IS_PRODUCTION", False):
        errors.append(
            Error(
                "AUDIT_CHAIN_KEY is empty: production needs a secret key, kept outside the database, to "
                "key the audit trail's hash chain.",
                hint="Generate one with: "
                "python -c \"import secrets; print('k1:' + secrets.token_urlsafe(48))\"",
                id="audit.E001",
            )
        )
    return errors


@register(deploy=True)
def audit_checkpoint_destination(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if getattr(settings, "AUDIT_CHECKPOINT_EMAIL", None) or getattr(settings, "AUDIT_CHECKPOINT_WEBHOOK", ""):
        return []
    return [
        Warning(
            "Audit checkpoints go only to a file on this host (AUDIT_CHECKPOINT_FILE): someone who takes "
            "over the host can rewrite it together with the database.",
            hint="Set AUDIT_CHECKPOINT_EMAIL or AUDIT_CHECKPOINT_WEBHOOK to an address outside the host, "
            "and run `manage.py audit_checkpoint` from cron or with --every.",
            id="audit.W004",
        )
    ]


def role_warnings() -> list[CheckMessage]:
    """On PostgreSQL: warnings when the app's database role could rewrite the audit table."""
    if connection.vendor != "postgresql":
        return []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
            row = cursor.fetchone()
            cursor.execute(
                "SELECT tableowner, pg_has_role(current_user, tableowner, 'MEMBER'), "
                "has_table_privilege(current_user, quote_ident(schemaname) || '.' || quote_ident(tablename), "
                "'UPDATE, DELETE, TRUNCATE') "
                "FROM pg_tables WHERE tablename = %s AND schemaname = ANY (current_schemas(false))",
                [AUDIT_TABLE],
            )
            table = cursor.fetchone()
    except Exception:  # unreachable database, missing catalog access: nothing to say about the role
        return []
    warnings: list[CheckMessage] = []
    user = row[0] if row else "?"
    if row and row[1]:
        warnings.append(
            Warning(
                f"The app connects to PostgreSQL as {user!r}, a superuser: it can disable the audit "
                "trail's triggers (session_replication_role, ALTER TABLE) and rewrite events.",
                hint="Connect as a least-privilege role (README, 'Audit trail'); "
                "run migrations as the owner role.",
                id="audit.W001",
            )
        )
    if table and table[1]:
        warnings.append(
            Warning(
                f"The app's database role {user!r} owns the audit table (owner {table[0]!r}) or is a member "
                "of its owner: it can ALTER the table and disable its triggers.",
                hint="Let a separate owner role run migrations and connect the app as a role without "
                "ownership (README, 'Audit trail').",
                id="audit.W002",
            )
        )
    elif table and table[2]:
        warnings.append(
            Warning(
                f"The app's database role {user!r} holds UPDATE, DELETE or TRUNCATE on {AUDIT_TABLE}; it "
                "needs only SELECT and INSERT.",
                hint=f"REVOKE UPDATE, DELETE, TRUNCATE ON {AUDIT_TABLE} FROM {user};",
                id="audit.W003",
            )
        )
    return warnings


@register(deploy=True)
def audit_database_role(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return role_warnings()
