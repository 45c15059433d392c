"""The clinic's logo on its printed documents (issue 16).

An admin uploads a PNG or JPEG on /documents/clinic/logo/; it passes the chart documents' checks
(documents/validation.py through services.check_upload: type by content, a plain name, decodable,
not a pixel bomb) narrowed to images and a small size limit, and is kept in the documents storage.
core/pdf.py's template (templates/pdf/base.html) prints it in the running header of every page of every
superbill, statement, invoice and clinical record as an inline `data:` image, so rendering never fetches
a URL.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from django.db import transaction

from kapclinic.audit.services import record_event
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError
from kapclinic.documents import services, validation
from kapclinic.documents.models import ClinicLogo, document_storage
from kapclinic.policy import ClinicAction, clinic_can

logger = logging.getLogger(__name__)

#: The largest logo accepted: a printed logo is a few centimetres wide; 500 KB is plenty at 300 dpi.
LOGO_MAX_BYTES = 500 * 1024
#: Largest logo in pixels either way (a 60 mm wide logo at 600 dpi is about 1,400 pixels).
LOGO_MAX_SIDE = 4000
_SCAN_ADVICE = "Scan at a lower resolution or split it into parts."


def _may(actor: Actor) -> None:
    if not clinic_can(actor, ClinicAction.MANAGE_CLINIC):
        raise DomainError("Only the clinic's administrators can change its logo.")


def logo_for(clinic: Any) -> ClinicLogo | None:
    if clinic is None:
        return None
    return ClinicLogo.objects.filter(clinic_id=clinic.pk).first()


def logo_set(actor: Actor, upload: services.Upload) -> ClinicLogo:
    """Check and keep a new logo (replacing the old one, whose file is removed after commit)."""
    _may(actor)
    try:
        checked, sha256 = services.check_upload(upload, allowed=validation.IMAGES, limit=LOGO_MAX_BYTES)
    except DomainError as exc:
        sentence = str(exc).replace(_SCAN_ADVICE, "Save the logo smaller.")
        raise DomainError(field_errors={"file": [sentence]}) from None
    _check_side(upload, checked.name)
    with services.removed_on_failure() as kept, transaction.atomic():
        old = ClinicLogo.objects.select_for_update().filter(clinic=actor.clinic).first()
        old_name = old.file.name if old else ""
        row = old or ClinicLogo(clinic=actor.clinic)
        row.name, row.content_type, row.size = checked.name, checked.content_type, checked.size
        row.sha256 = sha256
        row.uploaded_by = actor.require_user()
        row.uploaded_at = clock.now()
        services.store_checked(row, "file", upload=upload, checked=checked, kept=kept)
        record_event(actor, "update", obj=row, detail=f"logo {checked.content_type}")
        if old_name and old_name != row.file.name:
            transaction.on_commit(lambda: document_storage().delete(old_name))
    return row


def _check_side(upload: services.Upload, name: str) -> None:
    from PIL import Image

    upload.fh.seek(0)
    with Image.open(upload.fh) as img:
        width, height = img.size
    upload.fh.seek(0)
    if max(width, height) > LOGO_MAX_SIDE:
        raise DomainError(
            field_errors={
                "file": [
                    f"“{name}” is {width} × {height} pixels; a logo may be at most {LOGO_MAX_SIDE} pixels "
                    "either way. Save it smaller."
                ]
            }
        )


def logo_remove(actor: Actor) -> None:
    _may(actor)
    with transaction.atomic():
        row = ClinicLogo.objects.select_for_update().filter(clinic=actor.clinic).first()
        if row is None:
            raise DomainError("There is no logo to remove.")
        name = row.file.name
        record_event(actor, "update", obj=row, detail="logo removed")
        row.delete()
        transaction.on_commit(lambda: document_storage().delete(name))


def logo_data_uri(clinic: Any) -> str:
    """The clinic's logo as an inline `data:` URI for the PDF templates; "" when there is none or its
    file cannot be read (the document prints without it; the failure is logged without detail)."""
    row = logo_for(clinic)
    if row is None or row.content_type not in validation.IMAGES:
        return ""
    try:
        with document_storage().open(row.file.name, "rb") as fh:
            data = fh.read(LOGO_MAX_BYTES + 1)
    except OSError:
        logger.warning("clinic logo %s could not be read from the documents storage", row.pk)
        return ""
    if len(data) > LOGO_MAX_BYTES:
        return ""
    return f"data:{row.content_type};base64,{base64.b64encode(data).decode('ascii')}"
