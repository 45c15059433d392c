from django.urls import path

from kapclinic.fhirapi import views

app_name = "fhirapi"

urlpatterns = [
    path("metadata", views.metadata, name="metadata"),
    path("<str:resource_type>/<str:resource_id>", views.read, name="read"),
    path("<str:resource_type>", views.search, name="search"),
]
