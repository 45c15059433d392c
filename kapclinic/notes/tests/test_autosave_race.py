"""Issue 12: the author's own autosave, still in flight when they press "Sign note" (or "Save draft"), is
not "someone else's change". A page's saves carry its editing-session token; a save from the same page
with the version it knew before its own autosave is accepted, and carries the newer text. A save from
another page (another tab, another device) with an old version is still refused."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse

from kapclinic.core.concurrency import ConflictError
from kapclinic.notes import services
from kapclinic.notes.models import Note, NoteStatus
from kapclinic.testing.factories import actor_for

pytestmark = pytest.mark.django_db

CONFLICT = "Someone else changed this record"


def _draft(world: Any) -> tuple[Any, Note]:
    actor = actor_for(world.therapist, world.clinic)
    return actor, services.note_create(actor, world.patient, template_key="soap")


def _texts(note: Note) -> dict[str, str]:
    return {s["key"]: s["text"] for s in Note.objects.get(pk=note.pk).sections}


def test_sign_with_the_version_from_before_the_pages_own_autosave_succeeds(
    world: Any, clock_frozen: Any
) -> None:
    actor, note = _draft(world)
    v = note.version
    services.note_save_draft(
        actor, note, expected_version=v, texts={"subjective": "Calmer"}, editor="page-a"
    )  # autosave: v+1
    # "Sign note" was pressed before the autosave's answer reached the page: it still sends v.
    signed = services.note_sign(
        actor, note, expected_version=v, texts={"subjective": "Calmer.", "plan": "Continue."}, editor="page-a"
    )
    assert signed.status == NoteStatus.SIGNED and signed.version == v + 2
    assert _texts(note) == {"subjective": "Calmer.", "objective": "", "assessment": "", "plan": "Continue."}


def test_save_draft_with_a_version_before_two_own_autosaves_succeeds(world: Any, clock_frozen: Any) -> None:
    actor, note = _draft(world)
    services.note_save_draft(actor, note, expected_version=1, texts={"plan": "a"}, editor="page-a")
    services.note_save_draft(actor, note, expected_version=2, texts={"plan": "ab"}, editor="page-a")
    services.note_save_draft(actor, note, expected_version=1, texts={"plan": "abc"}, editor="page-a")
    assert Note.objects.get(pk=note.pk).version == 4 and _texts(note)["plan"] == "abc"


@pytest.mark.parametrize("editor", ["page-b", ""])
def test_another_pages_change_is_still_refused(world: Any, clock_frozen: Any, editor: str) -> None:
    actor, note = _draft(world)
    services.note_save_draft(actor, note, expected_version=1, texts={"plan": "from page A"}, editor="page-a")
    with pytest.raises(ConflictError):
        services.note_sign(actor, note, expected_version=1, texts={"plan": "from page B"}, editor=editor)
    with pytest.raises(ConflictError):
        services.note_save_draft(
            actor, note, expected_version=1, texts={"plan": "from page B"}, editor=editor
        )
    # Page A after page B saved (B knew the current version): A's old version is refused, even though
    # A wrote a draft before.
    services.note_save_draft(
        actor, note, expected_version=2, texts={"plan": "page B, current"}, editor="page-b"
    )
    with pytest.raises(ConflictError):
        services.note_sign(actor, note, expected_version=2, texts={"plan": "from page A"}, editor="page-a")
    stored = Note.objects.get(pk=note.pk)
    assert stored.status == NoteStatus.DRAFT and _texts(note)["plan"] == "page B, current"


def _editor_token(client: Any, world: Any, note: Note) -> str:
    page = client.get(reverse("notes:edit", args=[world.patient.pk, note.pk])).content.decode()
    found = re.search(r'name="editor" value="([^"]+)"', page)
    assert found, "the editor page carries its editing-session token"
    return found.group(1)


def test_over_http_autosave_in_flight_then_sign_from_the_same_page(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    _, note = _draft(world)
    client.force_login(world.therapist)
    token = _editor_token(client, world, note)
    assert token != _editor_token(client, world, note)  # every opened page has its own
    autosave = reverse("notes:autosave", args=[world.patient.pk, note.pk])
    sign = reverse("notes:sign", args=[world.patient.pk, note.pk])
    r = client.post(autosave, {"version": 1, "editor": token, "s_plan": "Walk"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and 'id="note-version" value="2"' in r.content.decode()
    # The page had not received version 2 yet when Sign note went (htmx request: the page is sent on).
    r = client.post(sign, {"version": 1, "editor": token, "s_plan": "Walk daily."}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200, r.content.decode()
    assert r["HX-Redirect"] == reverse("notes:detail", args=[world.patient.pk, note.pk])
    stored = Note.objects.get(pk=note.pk)
    assert stored.is_signed and _texts(note)["plan"] == "Walk daily."


def test_over_http_without_scripts_the_same_page_signs_too(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    _, note = _draft(world)
    client.force_login(world.therapist)
    token = _editor_token(client, world, note)
    client.post(reverse("notes:autosave", args=[world.patient.pk, note.pk]),
                {"version": 1, "editor": token, "s_plan": "Walk"})  # fmt: skip
    r = client.post(reverse("notes:sign", args=[world.patient.pk, note.pk]),
                    {"version": 1, "editor": token, "s_plan": "Walk daily."})  # fmt: skip
    assert r.status_code == 302 and Note.objects.get(pk=note.pk).is_signed


def test_over_http_another_tabs_change_is_refused_and_the_page_keeps_its_text(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    _, note = _draft(world)
    client.force_login(world.therapist)
    tab_a, tab_b = _editor_token(client, world, note), _editor_token(client, world, note)
    autosave = reverse("notes:autosave", args=[world.patient.pk, note.pk])
    sign = reverse("notes:sign", args=[world.patient.pk, note.pk])
    r = client.post(autosave, {"version": 1, "editor": tab_b, "s_plan": "Tab B"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200
    r = client.post(sign, {"version": 1, "editor": tab_a, "s_plan": "Tab A"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 409 and CONFLICT in r.content.decode() and "HX-Redirect" not in r
    r = client.post(sign, {"version": 1, "editor": tab_a, "s_plan": "Tab A"})
    assert r.status_code == 302 and r["Location"].endswith(f"/{note.pk}/edit/")
    r = client.post(autosave, {"version": 1, "editor": tab_a, "s_plan": "Tab A"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 409 and CONFLICT in r.content.decode()
    assert not Note.objects.get(pk=note.pk).is_signed and _texts(note)["plan"] == "Tab B"
    # An empty note cannot be signed: over htmx the page shows why and stays.
    _, empty = _draft(world)
    r = client.post(reverse("notes:sign", args=[world.patient.pk, empty.pk]),
                    {"version": 1, "editor": "x"}, HTTP_HX_REQUEST="true")  # fmt: skip
    assert r.status_code == 400 and "needs some text" in r.content.decode()
