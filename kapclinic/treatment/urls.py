from django.urls import path

from kapclinic.treatment import views

app_name = "treatment"

urlpatterns = [
    path("", views.index, name="index"),
    path("protocols/<str:protocol_id>/<str:version>/", views.protocol, name="protocol"),
    path("patients/<int:patient_id>/plans/new/", views.plan_new, name="plan_new"),
    path("patients/<int:patient_id>/plans/<int:plan_id>/", views.plan, name="plan"),
    path("patients/<int:patient_id>/plans/<int:plan_id>/sign/", views.plan_sign, name="plan_sign"),
]
