from collections.abc import Callable

from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt  # posted by the error-reporting test straight through the WSGI handler
def boom(request: HttpRequest) -> HttpResponse:
    # The patient data arrives in the request (body or query) and lives in a local variable; no source
    # line quotes it, so only a log that printed the message, the locals or the body would show it.
    patient_name = request.POST.get("name") or request.GET.get("name", "")
    try:
        raise IntegrityError(f"duplicate key value violates unique constraint: ({patient_name})")
    except IntegrityError as exc:
        raise RuntimeError(f"Synthetic failure mentioning {patient_name}") from exc


class BoomMiddleware:
    """Fails outside any view, the way a broken middleware would (used by test_errors)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/mw-boom/":
            patient_name = request.GET.get("name", "")
            raise KeyError(patient_name)
        return self.get_response(request)


urlpatterns = [path("boom/", boom, name="boom"), path("", include("kapclinic.urls"))]
handler500 = "kapclinic.core.views.error_500"
