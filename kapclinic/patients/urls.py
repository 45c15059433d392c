from django.urls import path

from kapclinic.patients import views

app_name = "patients"

urlpatterns = [
    path("", views.patient_list, name="list"),
    path("new/", views.patient_new, name="new"),
    path("<int:patient_id>/", views.chart, name="chart"),
    path("<int:patient_id>/timeline/", views.timeline, name="timeline"),
    path("<int:patient_id>/edit/", views.edit, name="edit"),
    path("<int:patient_id>/care-team/", views.care_team, name="care_team"),
    path("<int:patient_id>/diagnoses/add/", views.add_diagnosis, name="add_diagnosis"),
    path("<int:patient_id>/medications/add/", views.add_medication, name="add_medication"),
    path(
        "<int:patient_id>/medications/<int:medication_id>/stop/",
        views.stop_medication,
        name="stop_medication",
    ),
    path("<int:patient_id>/allergies/add/", views.add_allergy, name="add_allergy"),
    path("<int:patient_id>/portal-invite/", views.portal_invite, name="portal_invite"),
    path("<int:patient_id>/portal-revoke/", views.portal_revoke, name="portal_revoke"),
]
