from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("Synthetic failure mentioning Jane Example, DOB 1980-01-01")


urlpatterns = [path("boom/", boom, name="boom"), path("", include("kapclinic.urls"))]
handler500 = "kapclinic.core.views.error_500"
