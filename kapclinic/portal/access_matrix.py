from __future__ import annotations

from typing import Any

from kapclinic.testing.matrix import Entry, expect

# Portal pages belong to the signed-in patient: staff get 403 (their role has no portal), patients see
# only their own record (an entry of another patient is 404).
PATIENTS = expect(403, patient_user=200, other_patient_user=200)


def _entry(world: Any) -> dict[str, Any]:
    from kapclinic.portal.models import JournalEntry

    entry = JournalEntry.objects.create(patient=world.patient, kind="checkin", text="synthetic", mood=3)
    return {"entry_id": entry.pk}


MATRIX = {
    "portal:index": Entry(PATIENTS),
    "portal:journal": Entry(PATIENTS),
    "portal:entry": Entry(expect(403, patient_user=200, other_patient_user=404), setup=_entry),
    "portal:entry_share": Entry(
        expect(403, patient_user=302, other_patient_user=404), method="post", setup=_entry
    ),
    "portal:access_log": Entry(PATIENTS),
    "portal:calendar": Entry(PATIENTS),
    # Issue 17: the patient's own text-message choice and consent (staff record it on messaging:sms).
    "portal:texts": Entry(PATIENTS),
}
