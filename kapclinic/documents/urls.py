from django.urls import path

from kapclinic.documents import views, views_records

app_name = "documents"

P = "patients/<int:patient_id>/"
D = P + "<int:document_id>/"

urlpatterns = [
    path("queue/", views.queue, name="queue"),
    path("clinic/logo/", views.logo, name="logo"),
    path(P, views.patient_documents, name="patient"),
    path(D, views.detail, name="detail"),
    path(D + "download/", views.download, name="download"),
    path(D + "file/", views.file_upload, name="file"),
    path(D + "reject/", views.reject_upload, name="reject"),
    path(P + "records/", views_records.records_page, name="records"),
    path(P + "records/sessions/<int:session_id>.pdf", views_records.session_pdf, name="session_pdf"),
    path(P + "records/consent/<int:signature_id>.pdf", views_records.consent_pdf, name="consent_pdf"),
    path(P + "records/notes/<int:note_id>.pdf", views_records.note_pdf, name="note_pdf"),
    path(P + "records/plans/<int:plan_id>.pdf", views_records.plan_pdf, name="plan_pdf"),
    path(P + "records/measures.pdf", views_records.measures_pdf, name="measures_pdf"),
    path(P + "records/letters/<int:letter_id>.pdf", views_records.letter_pdf, name="letter_pdf"),
    path("my/", views.my_documents, name="my"),
    path("my/consent.pdf", views_records.my_consent, name="my_consent"),
    path("my/treatment-plan.pdf", views_records.my_plan, name="my_plan"),
    path("my/questionnaires.pdf", views_records.my_measures, name="my_measures"),
]
