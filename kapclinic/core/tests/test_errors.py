from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import Client


@pytest.mark.urls("kapclinic.core.tests.urls_error")
def test_server_error_page_has_request_id_and_log_has_no_patient_data(db: Any, caplog: Any) -> None:
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.INFO):
        response = client.get("/boom/")
    assert response.status_code == 500
    rid = response["X-Request-ID"]
    html = response.content.decode()
    assert rid in html and "Jane" not in html and "Traceback" not in html
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged
    assert "Jane" not in logged and "1980" not in logged


def test_unknown_url_gets_helpful_404(db: Any, client: Any) -> None:
    response = client.get("/definitely/not/here/")
    assert response.status_code == 404
    assert "We could not find that page" in response.content.decode()


def test_healthz(db: Any, client: Any) -> None:
    assert client.get("/home/healthz").json() == {"status": "ok"}
