from django.urls import path

from kapclinic.billing import views

app_name = "billing"

urlpatterns = [
    path("", views.index, name="index"),
    path("fees/", views.fees, name="fees"),
    path("fees/<int:fee_id>/", views.fee_edit, name="fee_edit"),
    path("packages/", views.packages, name="packages"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/providers/<int:user_id>/", views.provider, name="provider"),
    path("ageing/", views.ageing, name="ageing"),
    path("patients/<int:patient_id>/", views.patient, name="patient"),
    path("patients/<int:patient_id>/<slug:op>/", views.patient_action, name="patient_action"),
    path("patients/<int:patient_id>/documents/<slug:kind>.pdf", views.document, name="document"),
    path("my/", views.portal, name="portal"),
    path("my/documents/<slug:kind>.pdf", views.portal_document, name="portal_document"),
]
