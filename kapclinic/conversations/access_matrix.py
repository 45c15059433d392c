"""Secure messages are clinical data: clinicians with view_clinical for the patient (prescribers and
nurses the whole clinic, therapists their caseload); front desk and admins none (they book and run the
clinic, they do not read clinical messages; admins set the reply time); a patient only their own patient
threads; another clinic never (404)."""

from __future__ import annotations

from typing import Any

from kapclinic.testing.matrix import Entry, expect, patient_kwargs, patient_scoped, roles

CLINICIANS = ("prescriber", "therapist", "nurse")


def _thread(world: Any) -> dict[str, Any]:
    from kapclinic.conversations.models import Message, Thread

    thread = Thread.objects.create(
        clinic=world.clinic,
        patient=world.patient,
        subject="Question",
        created_by=world.patient_user,
        last_message_by=world.patient_user,
    )
    Message.objects.create(thread=thread, author=world.patient_user, from_patient=True, body="Hello")
    return {"patient_id": world.patient.pk, "thread_id": thread.pk}


def _my_thread(world: Any) -> dict[str, Any]:
    return {"thread_id": _thread(world)["thread_id"]}


def _message(world: Any) -> dict[str, Any]:
    kwargs = _thread(world)
    from kapclinic.conversations.models import Message

    kwargs["message_id"] = Message.objects.get(thread_id=kwargs["thread_id"]).pk
    return kwargs


def _attachment(world: Any) -> dict[str, Any]:
    """A thread of world.patient whose message carries a small PDF (kept through the documents storage)."""
    import io

    from kapclinic.conversations.models import Thread
    from kapclinic.conversations.services import thread_start
    from kapclinic.documents.services import Upload
    from kapclinic.documents.testing import tiny_pdf
    from kapclinic.testing.factories import actor_for

    data = tiny_pdf()
    thread: Thread = thread_start(
        actor_for(world.patient_user, world.clinic), world.patient, kind="patient", subject="Labs",
        body="My results", attachments=[Upload(io.BytesIO(data), "labs.pdf", len(data))],
    )  # fmt: skip
    att = thread.messages.get().attachments.get()
    return {"patient_id": world.patient.pk, "thread_id": thread.pk, "attachment_id": att.pk}


def _my_attachment(world: Any) -> dict[str, Any]:
    kwargs = _attachment(world)
    del kwargs["patient_id"]
    return kwargs


PATIENT_ONLY = expect(403, patient_user=200, other_patient_user=200)

MATRIX = {
    "conversations:inbox": Entry(roles(CLINICIANS)),
    "conversations:settings": Entry(roles(("admin", "prescriber"))),
    "conversations:my": Entry(PATIENT_ONLY),
    # Another patient's thread does not exist for them (404).
    "conversations:my_thread": Entry(expect(403, patient_user=200, other_patient_user=404), setup=_my_thread),
    # Attachments follow their thread: the patient of the thread and the clinicians who may read it.
    "conversations:my_attachment": Entry(
        expect(403, patient_user=200, other_patient_user=404), setup=_my_attachment
    ),
    "conversations:attachment": Entry(patient_scoped(CLINICIANS), setup=_attachment),
    "conversations:file_attachment": Entry(
        patient_scoped(CLINICIANS, ok=302),
        method="post",
        setup=_attachment,
        data=lambda w: {"category": "lab_result"},
    ),
    "conversations:patient": Entry(patient_scoped(CLINICIANS), kwargs=patient_kwargs),
    "conversations:thread": Entry(patient_scoped(CLINICIANS), setup=_thread),
    "conversations:assign": Entry(
        patient_scoped(CLINICIANS, ok=302), method="post", setup=_thread, data=lambda w: {"assigned_to": ""}
    ),
    "conversations:done": Entry(
        patient_scoped(CLINICIANS, ok=302), method="post", setup=_thread, data=lambda w: {"action": "done"}
    ),
    "conversations:file": Entry(patient_scoped(CLINICIANS, ok=302), method="post", setup=_message),
}
