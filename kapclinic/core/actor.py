"""Who is acting, in which clinic, from where: passed from views to services and the audit trail."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from kapclinic.accounts.models import Clinic, User

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


def _address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.0.0.5 is 10.0.0.5
    return address


def _trusted(address: IPAddress) -> bool:
    return any(address in network for network in settings.TRUSTED_PROXIES)


def client_ip(request: Any) -> str | None:
    """The address of the client behind this request: the one function for the audit trail (Actor.ip),
    the public inquiry rate limit and the sign-in lockout (AXES_CLIENT_IP_CALLABLE).

    X-Forwarded-For is believed only when the connection comes from a proxy listed in TRUSTED_PROXIES;
    from anyone else the header is ignored (anybody can send it). Behind trusted proxies the list is
    read from the right, past every trusted proxy, and the first address that is not one is the client:
    addresses further left were written by the client and prove nothing. A hop that is not an address
    stops the walk at the last trusted proxy seen."""
    remote_text = str(request.META.get("REMOTE_ADDR") or "")
    remote = _address(remote_text)
    if remote is None:
        return remote_text[:64] or None
    if not _trusted(remote):
        return str(remote)
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR") or "")
    nearest = remote
    for hop in reversed(forwarded.split(",") if forwarded.strip() else []):
        address = _address(hop)
        if address is None:
            break
        if not _trusted(address):
            return str(address)
        nearest = address
    return str(nearest)


def actor_from_request(request: Any) -> Actor:
    user = request.user if getattr(request, "user", None) and request.user.is_authenticated else None
    return Actor(
        user=user,
        clinic=getattr(request, "clinic", None),
        role=getattr(request, "role", None),
        request_id=getattr(request, "request_id", ""),
        ip=client_ip(request),
    )
