from django.urls import path

from kapclinic.conversations import views

app_name = "conversations"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("settings/", views.settings_page, name="settings"),
    path("my/", views.my, name="my"),
    path("my/<int:thread_id>/", views.my_thread, name="my_thread"),
    path("my/<int:thread_id>/attachments/<int:attachment_id>/", views.my_attachment, name="my_attachment"),
    path("patient/<int:patient_id>/", views.patient_threads, name="patient"),
    path("patient/<int:patient_id>/<int:thread_id>/", views.thread, name="thread"),
    path(
        "patient/<int:patient_id>/<int:thread_id>/attachments/<int:attachment_id>/",
        views.attachment,
        name="attachment",
    ),
    path(
        "patient/<int:patient_id>/<int:thread_id>/attachments/<int:attachment_id>/file/",
        views.file_attachment,
        name="file_attachment",
    ),
    path("patient/<int:patient_id>/<int:thread_id>/assign/", views.assign, name="assign"),
    path("patient/<int:patient_id>/<int:thread_id>/done/", views.done, name="done"),
    path(
        "patient/<int:patient_id>/<int:thread_id>/messages/<int:message_id>/file/",
        views.file_message,
        name="file",
    ),
]
