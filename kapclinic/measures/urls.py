from django.urls import path

from kapclinic.measures import views

app_name = "measures"

urlpatterns = [path("", views.index, name="index")]
