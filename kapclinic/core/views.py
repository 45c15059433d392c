from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render

from kapclinic.accounts.models import STAFF_ROLES, Role
from kapclinic.core.registry import dashboard_widgets


@login_required
def home(request: HttpRequest) -> HttpResponse:
    role = getattr(request, "role", None)
    if role == Role.PATIENT:
        return redirect("portal:index")
    if role not in STAFF_ROLES:
        return render(request, "core/no_access.html", status=403)
    # A widget whose context is None has nothing to say today and is left out.
    contexts = [(w, w.context(request)) for w in dashboard_widgets(role)]
    widgets = [{"widget": w, "context": ctx} for w, ctx in contexts if ctx is not None]
    return render(request, "core/home.html", {"widgets": widgets})


def healthz(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def error_404(request: HttpRequest, exception: Exception) -> HttpResponse:
    return render(request, "404.html", status=404)


def error_400(request: HttpRequest, exception: Exception) -> HttpResponse:
    from kapclinic.core.params import BadParameter

    reason = str(exception) if isinstance(exception, BadParameter) else ""
    return render(request, "400.html", {"reason": reason}, status=400)


def error_403(request: HttpRequest, exception: Exception) -> HttpResponse:
    return render(request, "403.html", {"reason": str(exception) if str(exception) else ""}, status=403)


def error_500(request: HttpRequest) -> HttpResponse:
    return render(request, "500.html", {"request_id": getattr(request, "request_id", "")}, status=500)
