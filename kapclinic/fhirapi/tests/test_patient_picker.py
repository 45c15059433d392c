"""The staff patient picker of a user-context launch (`launch/patient`, docs/fhir-api.md#patient-picker):
the staff member chooses among the patients policy.py lets them open; the token reads that one patient."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from kapclinic.audit.models import AuditEvent
from kapclinic.fhirapi.models import LaunchPatient
from kapclinic.fhirapi.tests.helpers import body, phq9, pkce, register_app

SCOPE = "launch/patient patient/*.rs offline_access"
CALLBACK = "https://app.example.test/callback"


def _params(app: Any, challenge: str, scope: str = SCOPE) -> dict[str, str]:
    return {
        "response_type": "code", "client_id": app.client_id, "redirect_uri": CALLBACK, "scope": scope,
        "state": "s1", "aud": "http://testserver/fhir", "code_challenge": challenge,
        "code_challenge_method": "S256",
    }  # fmt: skip


def _launch(client: Any, app: Any, user: Any, patient_id: Any, scope: str = SCOPE) -> tuple[Any, Any]:
    """(the consent page's answer to the POST, the token endpoint's answer or None)."""
    verifier, challenge = pkce()
    client.force_login(user)
    params = _params(app, challenge, scope)
    posted = client.post(
        "/fhir/auth/authorize",
        {**params, "allow": "Authorize", **({"launch_patient": patient_id} if patient_id else {})},
    )
    code = parse_qs(urlsplit(posted.get("Location", "")).query).get("code", [""])[0]
    client.logout()
    if not code:
        return posted, None
    answer = client.post(
        "/fhir/auth/token",
        {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
         "client_id": app.client_id, "code_verifier": verifier},
    )  # fmt: skip
    return posted, answer


def test_picker_lists_only_the_therapists_caseload(world: Any, client: Any) -> None:
    app = register_app(world)
    _, challenge = pkce()
    client.force_login(world.therapist)
    page = client.get("/fhir/auth/authorize", _params(app, challenge)).content.decode()
    assert f'value="{world.patient.pk}"' in page
    assert f'value="{world.other_patient.pk}"' not in page  # not on this therapist's caseload
    assert world.other_patient.mrn not in page
    assert AuditEvent.objects.filter(action="list", object_type="fhir:launch-picker").exists()
    found = client.get("/fhir/auth/authorize", {**_params(app, challenge), "patient_q": "zzz-nobody"})
    assert f'value="{world.patient.pk}"' not in found.content.decode()


def test_token_reads_the_chosen_patient_only(world: Any, client: Any) -> None:
    app = register_app(world)
    mine, theirs = phq9(world), phq9(world, patient=world.other_patient)
    _, answer = _launch(client, app, world.prescriber, world.other_patient.pk)
    assert answer is not None and answer.status_code == 200, answer and answer.content
    data = answer.json()
    assert data["patient"] == f"p{world.other_patient.pk}" and data["need_patient_banner"] is True
    auth = {"HTTP_AUTHORIZATION": f"Bearer {data['access_token']}"}
    bundle = body(client.get("/fhir/Observation?code=http://loinc.org|44261-6", **auth))
    assert [e["resource"]["id"] for e in bundle["entry"]] == [f"score{theirs.pk}"]
    assert client.get(f"/fhir/Observation/score{mine.pk}", **auth).status_code == 404
    assert client.get(f"/fhir/Patient/p{world.other_patient.pk}", **auth).status_code == 200
    assert LaunchPatient.objects.filter(token__isnull=False, patient=world.other_patient).count() == 1
    assert not LaunchPatient.objects.filter(token__isnull=True).exists()  # the code's row went with it

    # the refreshed token keeps the patient
    refreshed = client.post(
        "/fhir/auth/token",
        {"grant_type": "refresh_token", "refresh_token": data["refresh_token"], "client_id": app.client_id},
    )
    assert refreshed.status_code == 200, refreshed.content
    assert refreshed.json()["patient"] == f"p{world.other_patient.pk}"
    again = {"HTTP_AUTHORIZATION": f"Bearer {refreshed.json()['access_token']}"}
    assert body(client.get("/fhir/Observation", **again))["total"] == 1


def test_a_patient_outside_the_caseload_cannot_be_chosen(world: Any, client: Any) -> None:
    app = register_app(world)
    posted, answer = _launch(client, app, world.therapist, world.other_patient.pk)
    assert answer is None and posted.status_code == 200  # the page again, no code issued
    assert "cannot open that patient" in posted.content.decode()
    assert AuditEvent.objects.filter(action="denied", object_type="fhir:launch-picker").exists()
    assert not LaunchPatient.objects.exists()
    posted, answer = _launch(client, app, world.therapist, None)
    assert answer is None and "Choose the patient" in posted.content.decode()
    posted, answer = _launch(client, app, world.front_desk, world.patient.pk)  # no clinical access at all
    assert answer is None and posted.status_code == 200


def test_a_patients_own_launch_needs_no_picker(world: Any, client: Any) -> None:
    app = register_app(world)
    _, challenge = pkce()
    client.force_login(world.patient_user)
    assert (
        "launch_patient" not in client.get("/fhir/auth/authorize", _params(app, challenge)).content.decode()
    )
    _, answer = _launch(client, app, world.patient_user, None)
    assert answer is not None and answer.json()["patient"] == f"p{world.patient.pk}"


def test_staff_without_launch_patient_get_a_user_token(world: Any, client: Any) -> None:
    app = register_app(world)
    _, answer = _launch(client, app, world.therapist, None, scope="user/*.rs")
    assert answer is not None and "patient" not in answer.json()
