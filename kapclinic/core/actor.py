"""Who is acting, in which clinic, from where: passed from views to services and the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kapclinic.accounts.models import Clinic, User


@dataclass(frozen=True)
class Actor:
    user: User | None
    clinic: Clinic | None
    role: str | None
    request_id: str = ""
    ip: str | None = None

    @property
    def user_id(self) -> int | None:
        return self.user.pk if self.user is not None else None

    def require_user(self) -> User:
        """The signed-in user, for writes that record who made them (a non-null foreign key).

        A system or anonymous actor has none: asking is a programming error, refused here with a
        sentence rather than later as a database IntegrityError."""
        if self.user is None:
            raise ValueError(
                f"This change needs a signed-in user; the {self.role or 'anonymous'} actor has none."
            )
        return self.user

    @classmethod
    def system(cls, clinic: Clinic | None = None, reason: str = "system") -> Actor:
        return cls(user=None, clinic=clinic, role="system", request_id=reason)


def client_ip(request: Any) -> str | None:
    # Behind the TLS proxy the proxy sets X-Forwarded-For; we trust only its first hop, which the
    # deployment guide tells operators to overwrite at the proxy.
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded:
        return str(forwarded.split(",")[0].strip())[:64]
    addr = request.META.get("REMOTE_ADDR")
    return str(addr)[:64] if addr else None


def actor_from_request(request: Any) -> Actor:
    user = request.user if getattr(request, "user", None) and request.user.is_authenticated else None
    return Actor(
        user=user,
        clinic=getattr(request, "clinic", None),
        role=getattr(request, "role", None),
        request_id=getattr(request, "request_id", ""),
        ip=client_ip(request),
    )
