from django.urls import path

from kapclinic.consent import views

app_name = "consent"

urlpatterns = [
    path("", views.index, name="index"),
    path("documents/new/", views.document_new, name="document_new"),
    path("documents/<int:document_id>/", views.document, name="document"),
    path("sign/", views.sign, name="sign"),
    path("patients/<int:patient_id>/", views.patient_consents, name="patient"),
    path("patients/<int:patient_id>/sign/", views.sign_in_clinic, name="sign_in_clinic"),
    path("patients/<int:patient_id>/kiosk/", views.kiosk_start, name="kiosk_start"),
    path("kiosk/", views.kiosk_view, name="kiosk"),
    path("kiosk/exit/", views.kiosk_exit, name="kiosk_exit"),
]
