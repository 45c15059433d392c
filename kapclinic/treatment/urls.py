from django.urls import path

from kapclinic.treatment import views

app_name = "treatment"

urlpatterns = [path("", views.index, name="index")]
