from django.urls import path

from kapclinic.messaging import views

app_name = "messaging"

urlpatterns = [
    path("", views.index, name="index"),
    path("<int:message_id>/retry/", views.retry, name="retry"),
]
