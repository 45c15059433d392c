from django.urls import path

from kapclinic.notes import views

app_name = "notes"

P = "patient/<int:patient_id>/"
N = P + "<int:note_id>/"

urlpatterns = [
    path("", views.index, name="index"),
    path("templates/", views.templates, name="templates"),
    path("templates/<int:template_id>/edit/", views.template_edit, name="template_edit"),
    path("templates/<int:template_id>/retire/", views.template_retire, name="template_retire"),
    path("templates/<int:template_id>/reinstate/", views.template_reinstate, name="template_reinstate"),
    path("templates/builtin/<slug:key>/", views.builtin_visibility, name="builtin_visibility"),
    path(P, views.patient_notes, name="patient"),
    path(P + "new/", views.new, name="new"),
    path(N, views.detail, name="detail"),
    path(N + "edit/", views.edit_note, name="edit"),
    path(N + "autosave/", views.autosave, name="autosave"),
    path(N + "sign/", views.sign, name="sign"),
    path(N + "addendum/", views.addendum, name="addendum"),
    path(P + "thread/<int:appointment_id>/", views.thread, name="thread"),
    path(P + "process/", views.process_list, name="process_list"),
    path(P + "process/<int:process_note_id>/share/", views.process_share, name="process_share"),
    path(P + "process/<int:process_note_id>/edit/", views.process_edit, name="process_edit"),
    path(P + "process/<int:process_note_id>/revisions/", views.process_revisions, name="process_revisions"),
]
