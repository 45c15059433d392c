from django.urls import path

from kapclinic.interop import views

app_name = "interop"

urlpatterns = [path("patients/<int:patient_id>/fhir/", views.patient_bundle, name="patient_bundle")]
