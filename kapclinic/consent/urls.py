from django.urls import path

from kapclinic.consent import views

app_name = "consent"

urlpatterns = [path("", views.index, name="index")]
