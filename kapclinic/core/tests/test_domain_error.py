"""One domain exception (issue 13): services refuse with `core.errors.DomainError`, sentences and field
errors, and no app defines its own refusal exception again."""

from __future__ import annotations

import ast
from pathlib import Path

from django import forms

from kapclinic.core.errors import DomainError

ROOT = Path(__file__).resolve().parents[2]  # kapclinic/

# Exceptions that are not refusals of a person's request, and why they stay.
NOT_REFUSALS = {
    "DomainError": "the one",
    "ConflictError": "a stale save: HTTP 409 with its own sentence (core/concurrency.py)",
    "ConfigError": "the server's configuration is wrong at start-up (core/env.py)",
    "BadParameter": "a malformed request parameter: HTTP 400 (core/params.py)",
    "FhirError": "the FHIR API's answer: an OperationOutcome with its HTTP status (fhirapi/outcome.py)",
    "SmsError": "a text provider's failure, kept by class name for the delivery retries (messaging/sms.py)",
    "_DryRun": "control flow: rolls back a trial booking (scheduling/series.py)",
    "Unmappable": "control flow: the export validates such a resource fully (fhirapi/shape_validation.py)",
}


def test_sentences_and_field_errors() -> None:
    exc = DomainError(["One.", "Two."], {"staff": ["Busy."]})
    assert str(exc) == exc.message == "One. Two."
    assert exc.all_messages == ["One.", "Two.", "Busy."]
    only_fields = DomainError(field_errors={"text": ["Write the note."]})
    assert only_fields.messages == [] and str(only_fields) == "Write the note."


def test_add_to_form_puts_errors_by_their_fields() -> None:
    class F(forms.Form):
        text = forms.CharField(required=False)

    form = F({"text": "x"})
    assert form.is_valid()
    DomainError("At the top.", {"text": ["By the field."], "gone": ["No such field."]}).add_to_form(form)
    assert form.errors["text"] == ["By the field."]
    assert form.non_field_errors() == ["No such field.", "At the top."]


def test_no_app_defines_its_own_refusal_exception() -> None:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if {"tests", "migrations", "clinical"} & set(path.parts):
            continue  # kapclinic.clinical is pure Python with its own exceptions, turned into DomainError
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name not in NOT_REFUSALS:
                bases = {ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases}
                if bases & {"Exception", "ValueError", "RuntimeError", "PermissionError"}:
                    found.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert not found, f"Raise kapclinic.core.errors.DomainError instead of: {found}"
