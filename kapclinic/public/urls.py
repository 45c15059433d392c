from django.urls import path

from kapclinic.public import views

app_name = "public"

urlpatterns = [path("", views.index, name="index")]
