from django.urls import path

from kapclinic.sessions import views

app_name = "sessions"

urlpatterns = [path("", views.index, name="index")]
