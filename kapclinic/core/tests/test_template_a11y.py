"""Markup rules that keep every page usable by keyboard and screen reader (issue 18), checked on the
template sources so a new page cannot miss them:

- a `.table-wrap` (a table that may scroll sideways on a phone) is a focusable, named region:
  tabindex="0" role="region" aria-label="..." (axe: scrollable-region-focusable);
- an error summary's role="alert" sits on a <div> around the list, never on the <ul>/<ol> itself (a
  list with a role other than list loses its items' list semantics; axe: list, listitem);
- phone and email fields bring up the phone's number or email keyboard, and staff pages show a
  person's number and address as tel:/mailto: links.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the kapclinic package

TABLE_WRAP = re.compile(r"""<[a-z]+\s[^>]*class="[^"]*\btable-wrap\b[^"]*"[^>]*>""", re.I)
LIST_WITH_ROLE = re.compile(r"""<(?:ul|ol)\b[^>]*\srole=""", re.I)


def _templates() -> list[Path]:
    return sorted(ROOT.rglob("templates/**/*.html"))


def test_every_table_wrap_is_a_focusable_named_region() -> None:
    bad = []
    for path in _templates():
        for tag in TABLE_WRAP.findall(path.read_text()):
            if not ('tabindex="0"' in tag and 'role="region"' in tag and "aria-label=" in tag):
                bad.append(f"{path.relative_to(ROOT)}: {tag}")
    assert not bad, "give each .table-wrap tabindex, role and aria-label:\n" + "\n".join(bad)


def test_no_list_carries_a_role() -> None:
    bad = [
        f"{path.relative_to(ROOT)}: {m.group(0)}"
        for path in _templates()
        for m in LIST_WITH_ROLE.finditer(path.read_text())
    ]
    assert not bad, 'wrap the list in <div role="alert"> instead:\n' + "\n".join(bad)


def test_the_scan_sees_the_templates() -> None:
    texts = "".join(p.read_text() for p in _templates())
    assert TABLE_WRAP.search(texts) and "errorlist nonfield" in texts


def test_tel_href_keeps_digits_and_a_leading_plus() -> None:
    from kapclinic.core.templatetags.kap import tel_href

    assert tel_href("+1 (555) 010-4477") == "tel:+15550104477"
    assert tel_href("(555) 010-2040") == "tel:5550102040"
    assert tel_href("") == "" and tel_href(None) == "" and tel_href("ask reception") == ""


def test_phone_and_email_fields_bring_up_the_right_keyboard() -> None:
    from kapclinic.accounts.forms import InviteForm
    from kapclinic.intake.forms import ConvertForm, InquiryForm
    from kapclinic.patients.forms import DemographicsForm

    inquiry = InquiryForm()
    assert 'type="tel"' in str(inquiry["phone"]) and 'autocomplete="tel"' in str(inquiry["phone"])
    assert 'type="email"' in str(inquiry["email"]) and 'autocomplete="email"' in str(inquiry["email"])
    assert 'autocomplete="name"' in str(inquiry["name"])
    demographics = DemographicsForm()
    for name in ("phone", "emergency_contact_phone"):
        assert 'type="tel"' in str(demographics[name])
    assert 'type="email"' in str(demographics["email"])
    assert 'type="tel"' in str(ConvertForm()["phone"])
    assert 'type="email"' in str(InviteForm()["email"])


def test_staff_see_phone_numbers_and_emails_as_links(world: Any, client: Any) -> None:
    from kapclinic.intake.models import Inquiry

    world.patient.phone = "+1 (555) 010-4477"
    world.patient.email = "robin@example.test"
    world.patient.save(update_fields=["phone", "email"])
    inquiry = Inquiry.objects.create(
        clinic=world.clinic,
        name="Jordan Example",
        email="jordan@example.test",
        phone="(555) 010-2233",
        consent_to_contact=True,
        submission_token="t-1",
        client_key="k",
    )
    client.force_login(world.prescriber)
    chart = client.get(f"/patients/{world.patient.pk}/").content.decode()
    assert 'href="tel:+15550104477"' in chart and 'href="mailto:robin@example.test"' in chart
    client.force_login(world.front_desk)
    detail = client.get(f"/intake/inquiries/{inquiry.pk}/").content.decode()
    assert 'href="tel:5550102233"' in detail and 'href="mailto:jordan@example.test"' in detail
    client.force_login(world.admin)
    staff = client.get("/account/staff/").content.decode()
    assert f'href="mailto:{world.nurse.email}"' in staff
