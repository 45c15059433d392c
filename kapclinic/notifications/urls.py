from django.urls import path

from kapclinic.notifications import views

app_name = "notifications"

urlpatterns = [
    path("", views.index, name="index"),
    path("badge/", views.badge, name="badge"),
    path("read-all/", views.read_all, name="read_all"),
    path("open/<str:key>/", views.open_item, name="open"),
]
