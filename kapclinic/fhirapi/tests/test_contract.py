"""Contract test: an unmodified FHIR client (fhirpy, from PyPI) against a live server (docs/fhir-api.md).

Discover through /.well-known/smart-configuration, get a token as a backend service (signed JWT
assertion), read a patient, search their PHQ-9 totals by LOINC code page by page, run a Bulk Data export
to the end and parse every NDJSON line with fhir.resources. fhirpy has no OAuth or Bulk Data support, so
those steps use plain `requests`, exactly as the specifications describe them."""

from __future__ import annotations

import json
import time
from typing import Any

import requests
from fhir.resources.R4B import get_fhir_model_class
from fhirpy import SyncFHIRClient

from kapclinic.fhirapi.tests.helpers import assertion, phq9, register_backend


def test_fhirpy_discovers_authorises_reads_searches_and_exports(
    live_server: Any, settings: Any, tmp_path: Any, world: Any
) -> None:
    settings.SITE_URL = live_server.url
    settings.FHIR_EXPORT_DIR = tmp_path / "exports"
    for day in range(5):
        phq9(world, days_ago=day)
    phq9(world, patient=world.other_patient)
    registered, key = register_backend(world)
    base = f"{live_server.url}/fhir"

    config = requests.get(f"{base}/.well-known/smart-configuration", timeout=10).json()
    assert "S256" in config["code_challenge_methods_supported"]
    answer = requests.post(
        config["token_endpoint"],
        data={
            "grant_type": "client_credentials",
            "scope": "system/*.rs",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion(key, registered.client_id, aud=config["token_endpoint"]),
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]

    fhir = SyncFHIRClient(base, authorization=f"Bearer {token}")
    patient = fhir.reference("Patient", f"p{world.patient.pk}").to_resource()
    assert patient["identifier"][0]["value"] == world.patient.mrn

    search = (
        fhir.resources("Observation")
        .search(patient=f"Patient/p{world.patient.pk}", code="http://loinc.org|44261-6")
        .sort("-date")
        .limit(2)
    )
    totals = list(search)  # fhirpy follows the `next` links
    assert len(totals) == 5
    assert all(o["code"]["coding"][0]["code"] == "44261-6" for o in totals)
    dates = [o["effectiveDateTime"] for o in totals]
    assert dates == sorted(dates, reverse=True)
    first_page = search.fetch_raw()
    assert first_page["total"] == 5 and len(first_page["entry"]) == 2

    auth = {"Authorization": f"Bearer {token}"}
    kick = requests.get(
        f"{base}/Group/g{world.clinic.pk}/$export",
        headers={**auth, "Prefer": "respond-async", "Accept": "application/fhir+json"},
        timeout=30,
    )
    assert kick.status_code == 202, kick.text
    status_url = kick.headers["Content-Location"]
    for _ in range(60):
        status = requests.get(status_url, headers=auth, timeout=10)
        if status.status_code != 202:
            break
        time.sleep(min(int(status.headers.get("Retry-After", "1")), 1))
    assert status.status_code == 200, status.text
    lines = 0
    for output in status.json()["output"]:
        ndjson = requests.get(output["url"], headers=auth, timeout=30)
        assert ndjson.status_code == 200
        for line in ndjson.text.splitlines():
            resource = json.loads(line)
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
            assert resource["resourceType"] == output["type"]
            lines += 1
    assert lines >= 6 + 3  # five PHQ-9 totals and one other, their responses, the patients
