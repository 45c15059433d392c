from django.urls import path

from kapclinic.intake import views

app_name = "intake"

urlpatterns = [path("", views.index, name="index")]
