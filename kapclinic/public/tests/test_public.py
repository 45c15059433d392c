from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

PAGES = ["index", "evidence", "risks", "candidates", "expect", "therapies", "self_check", "inquiry"]


@pytest.mark.parametrize("name", PAGES)
def test_pages_show_clinic_details_from_settings(client: Any, world: Any, name: str) -> None:
    world.clinic.is_public = True
    world.clinic.phone = "(555) 010-7777"
    world.clinic.hours = "Tuesdays 9 to 5"
    world.clinic.save()
    body = client.get(reverse(f"public:{name}")).content.decode()
    assert world.clinic.name in body and "(555) 010-7777" in body and "Tuesdays 9 to 5" in body


def _answers(**kw: str) -> dict[str, str]:
    data = {"phq9_1": "1", "phq9_2": "2", "gad7_1": "0", "gad7_2": "1", "phq9_9": "0"}
    data.update(kw)
    return data


def test_self_check_wording_is_exact(client: Any, db: Any) -> None:
    body = client.get(reverse("public:self_check")).content.decode()
    for text in (
        "Little interest or pleasure in doing things",
        "Feeling down, depressed, or hopeless",
        "Feeling nervous, anxious or on edge",
        "Not being able to stop or control worrying",
        "Thoughts that you would be better off dead or of hurting yourself in some way",
    ):
        assert text in body
    assert "not a diagnosis" in body


def test_self_harm_answer_shows_crisis_resources_at_once(client: Any, db: Any) -> None:
    body = client.post(reverse("public:self_check"), {"phq9_9": "1"}).content.decode()
    assert "Please talk to someone now" in body and "988" in body


def test_red_flag_means_talk_to_doctor(client: Any, db: Any) -> None:
    body = client.post(reverse("public:self_check"), _answers(pregnant="yes")).content.decode()
    assert "Talk to your doctor first" in body


def test_otherwise_request_consultation_and_totals_uninterpreted(client: Any, db: Any) -> None:
    body = client.post(reverse("public:self_check"), _answers(prior="antidepressant")).content.decode()
    assert "Request a consultation" in body and "3 out of 6" in body


def test_incomplete_self_check_names_the_question(client: Any, db: Any) -> None:
    response = client.post(reverse("public:self_check"), {"phq9_9": "0"})
    assert response.status_code == 400
    assert (
        "Please answer &#x27;Little interest or pleasure in doing things&#x27;." in response.content.decode()
    )


@pytest.mark.parametrize("with_clinic", [False, True])
def test_crisis_line_is_never_repeated_inside_its_own_sentence(
    client: Any, db: Any, with_clinic: bool
) -> None:
    """The clinic's crisis line is a whole phrase ("988 ... (call or text 988)"): no page wraps it in
    another "call or text", which printed "call or text 988 ... (call or text 988)"."""
    if with_clinic:
        from kapclinic.testing.factories import make_clinic

        clinic = make_clinic("Harbor")
        type(clinic).objects.filter(pk=clinic.pk).update(is_public=True)
    for body in (
        client.post(reverse("public:self_check"), {"phq9_9": "1"}).content.decode(),
        client.get(reverse("public:self_check")).content.decode(),
        client.get(reverse("public:inquiry")).content.decode(),
    ):
        assert "call or text 988" in body.lower()
        assert "call or text 988 suicide" not in body.lower()
        assert "call or text <strong>988 suicide" not in body.lower()
