"""Every refusal is on the audit trail: a 403 answered to a signed-in user has its "denied" event."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from kapclinic import policy


class RefusalAuditMiddleware:
    """Views refuse through `policy.refuse` (open_patient, require_clinic), which records
    the "denied" event with the patient. This records it for any 403 that did not (a bare
    PermissionDenied, a page answering 403 itself), so no path can refuse without a trace; a request
    never gets two."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code == 403 and request.user.is_authenticated:
            policy.ensure_refusal_audited(request)
        return response
