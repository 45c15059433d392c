from django.urls import path

from kapclinic.intake import views

app_name = "intake"

urlpatterns = [
    path("", views.index, name="index"),
    path("inquiries/<int:inquiry_id>/", views.inquiry, name="inquiry"),
    path("inquiries/<int:inquiry_id>/convert/", views.convert, name="convert"),
    path("questionnaire/", views.questionnaire, name="questionnaire"),
    path("patients/<int:patient_id>/assessment/", views.assessment, name="assessment"),
    path("patients/<int:patient_id>/eligibility/", views.eligibility, name="eligibility"),
]
