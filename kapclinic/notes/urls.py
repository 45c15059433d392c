from django.urls import path

from kapclinic.notes import views

app_name = "notes"

P = "patient/<int:patient_id>/"
N = P + "<int:note_id>/"

urlpatterns = [
    path("", views.index, name="index"),
    path("templates/", views.templates, name="templates"),
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
]
