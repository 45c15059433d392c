from django.urls import path

from kapclinic.portal import views

app_name = "portal"

urlpatterns = [
    path("", views.index, name="index"),
    path("journal/", views.journal, name="journal"),
    path("journal/<int:entry_id>/", views.entry, name="entry"),
    path("journal/<int:entry_id>/share/", views.entry_share, name="entry_share"),
    path("who-opened-my-record/", views.access_log, name="access_log"),
    path("calendar/", views.calendar, name="calendar"),
    path("texts/", views.texts, name="texts"),
]
