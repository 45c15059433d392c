from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from kapclinic.core.actor import Actor, client_ip


def _actor(request: Any, user: Any) -> Actor:
    return Actor(
        user=user,
        clinic=None,
        role=None,
        request_id=getattr(request, "request_id", "") if request is not None else "",
        ip=client_ip(request) if request is not None else None,
    )


@receiver(user_logged_in)
def on_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    from kapclinic.audit.services import record_event

    record_event(_actor(request, user), "login", object_type="session")


@receiver(user_logged_out)
def on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    from kapclinic.audit.services import record_event

    if user is not None:
        record_event(_actor(request, user), "logout", object_type="session")


@receiver(user_login_failed)
def on_login_failed(sender: Any, credentials: Any, request: Any = None, **kwargs: Any) -> None:
    from kapclinic.audit.services import record_event

    # The attempted email is not stored: it may be a patient's address typed into the wrong box.
    record_event(_actor(request, None), "login_failed", object_type="session")
