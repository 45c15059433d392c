from django.urls import path

from kapclinic.scheduling import telehealth_views, views

app_name = "scheduling"

urlpatterns = [
    path("", views.index, name="index"),
    path("week/", views.week_view, name="week"),
    path("chairs/", views.chairs, name="chairs"),
    path("new/", views.new, name="new"),
    path("a/<int:appointment_id>/", views.detail, name="detail"),
    path("a/<int:appointment_id>/edit/", views.edit, name="edit"),
    path("a/<int:appointment_id>/cancel/", views.cancel, name="cancel"),
    path("a/<int:appointment_id>/status/", views.set_status, name="status"),
    path("a/<int:appointment_id>/check-in/", views.check_in, name="check_in"),
    path("patient/<int:patient_id>/", views.patient_appointments, name="patient"),
    path("patient/<int:patient_id>/plan/<int:plan_id>/book/", views.plan_series, name="plan_series"),
    path("reminders/", views.reminders, name="reminders"),
    path("reminders/<int:reminder_id>/retry/", views.reminder_retry, name="reminder_retry"),
    path("rooms/", views.rooms, name="rooms"),
    path("lengths/", views.lengths, name="lengths"),
    path("my-calendar/", views.my_feed, name="my_feed"),
    path("feed/<str:token>.ics", views.feed, name="feed"),
    path("video/settings/", telehealth_views.settings_page, name="telehealth"),
    path("video/my-room/", telehealth_views.my_room, name="my_room"),
    path("a/<int:appointment_id>/video/", telehealth_views.video, name="video"),
    path("my/<int:appointment_id>/video/", telehealth_views.my_video, name="my_video"),
]
