from django.urls import path

from kapclinic.scheduling import views

app_name = "scheduling"

urlpatterns = [path("", views.index, name="index")]
