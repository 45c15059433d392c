from __future__ import annotations

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from kapclinic.accounts.models import Clinic, Membership, User
from kapclinic.audit.services import record_event
from kapclinic.core import clock
from kapclinic.core.actor import Actor


def set_password_url(user: User) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return settings.SITE_URL + reverse(
        "accounts:password_reset_confirm", kwargs={"uidb64": uid, "token": token}
    )


def staff_invite(actor: Actor, clinic: Clinic, *, email: str, full_name: str, role: str) -> Membership:
    with transaction.atomic():
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(email=email, full_name=full_name)
        membership = Membership.objects.create(user=user, clinic=clinic, role=role)
        record_event(actor, "admin", obj=membership, detail=f"invite role={role}")
        link = set_password_url(user)
        transaction.on_commit(
            lambda: send_mail(
                f"You have been invited to {clinic.name} on KAP Clinic",
                f"Hello {full_name},\n\nYou have been given access to {clinic.name}. "
                f"Choose your password here (the link works once):\n{link}\n",
                None,
                [email],
            )
        )
    return membership


def staff_deactivate(actor: Actor, membership: Membership) -> None:
    """Remove a staff member's access to this clinic at once; their records and audit history stay."""
    with transaction.atomic():
        Membership.objects.filter(pk=membership.pk).update(is_active=False)
        user = membership.user
        if not user.memberships.filter(is_active=True).exists():
            User.objects.filter(pk=user.pk).update(is_active=False, deactivated_at=clock.now())
        record_event(actor, "admin", obj=membership, detail="deactivate")


def staff_reactivate(actor: Actor, membership: Membership) -> None:
    with transaction.atomic():
        Membership.objects.filter(pk=membership.pk).update(is_active=True)
        User.objects.filter(pk=membership.user_id).update(is_active=True, deactivated_at=None)
        record_event(actor, "admin", obj=membership, detail="reactivate")
