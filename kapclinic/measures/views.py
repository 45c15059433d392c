from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from kapclinic.core.stubs import require_roles


@login_required
def index(request: HttpRequest) -> HttpResponse:
    require_roles(request, "prescriber therapist nurse".split())
    return render(request, "core/stub.html", {"title": "Measures and safety alerts"})
