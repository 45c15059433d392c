from typing import Any

from kapclinic.testing.matrix import STAFF, Entry, expect, public, roles


def _target_membership(world: Any) -> dict[str, Any]:
    from kapclinic.accounts.models import Membership
    from kapclinic.testing.factories import make_staff

    user = make_staff(world.clinic, "nurse")
    return {"membership_id": Membership.objects.get(user=user).pk}


MATRIX = {
    "accounts:login": Entry(expect(302, anonymous=200)),
    "accounts:logout": Entry(public(405)),
    "accounts:mfa": Entry(expect(200)),
    # Like the MFA page: the verification step of any signed-in (not yet verified) session.
    "accounts:mfa_backup": Entry(expect(200)),
    # The emailed enrolment link: an unknown token is refused with a sentence (400) for anyone signed
    # in; anonymous visitors are sent to sign in first (the token waits in their session).
    "accounts:mfa_enrol": Entry(expect(400, anonymous=302), kwargs=lambda w: {"token": "not-a-token"}),
    # Without a waiting token it goes to the MFA page (which says how to get a link).
    "accounts:mfa_enrol_resume": Entry(expect(302)),
    # Staff only; the matrix's staff have no authenticator, so they see "set up one first".
    "accounts:backup_codes": Entry(roles(STAFF)),
    "accounts:switch_clinic": Entry(expect(405)),
    "accounts:password_reset": Entry(public()),
    "accounts:password_reset_done": Entry(public()),
    "accounts:password_reset_confirm": Entry(
        public(), kwargs=lambda w: {"uidb64": "MQ", "token": "bad-token"}
    ),
    "accounts:password_reset_complete": Entry(public()),
    "accounts:staff": Entry(roles(("admin",))),
    "accounts:clinic_details": Entry(roles(("admin",))),
    "accounts:staff_toggle": Entry(roles(("admin",), ok=302), method="post", setup=_target_membership),
    "accounts:staff_mfa_link": Entry(roles(("admin",), ok=302), method="post", setup=_target_membership),
}
