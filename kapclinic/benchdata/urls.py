"""Bench-only URLconf: the project's URLs plus the three framework-floor views."""

from django.urls import include, path

from kapclinic.benchdata import views
from kapclinic.urls import handler400, handler403, handler404, handler500
from kapclinic.urls import urlpatterns as project_urls

app_patterns = (
    [
        path("floor/", views.floor, name="floor"),
        path("floor/query/", views.floor_query, name="floor_query"),
        path("floor/audited/", views.floor_audited, name="floor_audited"),
    ],
    "bench",
)

urlpatterns = [path("bench/", include(app_patterns)), *project_urls]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
