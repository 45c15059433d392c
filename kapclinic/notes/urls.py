from django.urls import path

from kapclinic.notes import views

app_name = "notes"

urlpatterns = [path("", views.index, name="index")]
