"""The one PDF renderer: page size, page numbers and running header reach the PDF; no outside URLs."""

import io
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from kapclinic.core import pdf


def _render(tmp_path: Path, settings: Any, body: str, **context: Any) -> bytes:
    template = '{% extends "pdf/base.html" %}{% block body %}' + body + "{% endblock %}"
    (tmp_path / "t.html").write_text(template)
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}]
    return pdf.render_pdf("t.html", context, paper=context.pop("paper", "A4"))


def test_a4_and_letter_with_page_numbers_and_header(tmp_path: Path, settings: Any) -> None:
    for paper, width_pt in (("A4", 595), ("Letter", 612)):
        data = _render(
            tmp_path,
            settings,
            "<h1>Superbill</h1>",
            paper=paper,
            clinic_name="Demo Clinic",
            running_header="Pat Example · KAP-0001",
            document_title="Superbill",
        )
        reader = PdfReader(io.BytesIO(data))
        assert round(float(reader.pages[0].mediabox.width)) == width_pt
        text = reader.pages[0].extract_text()
        assert "Superbill" in text and "Page 1 of 1" in text and "KAP-0001" in text and "Demo Clinic" in text


def test_outside_urls_are_not_fetched(tmp_path: Path, settings: Any) -> None:
    data = _render(tmp_path, settings, '<img src="http://127.0.0.1:9/x.png" alt="x"><p>still renders</p>')
    assert "still renders" in PdfReader(io.BytesIO(data)).pages[0].extract_text()


def test_unknown_paper_is_refused() -> None:
    with pytest.raises(ValueError):
        pdf.render_pdf("pdf/base.html", {}, paper="A5")  # type: ignore[arg-type]
