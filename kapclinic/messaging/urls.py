from django.urls import path

from kapclinic.messaging import views

app_name = "messaging"

urlpatterns = [
    path("", views.index, name="index"),
    path("<int:message_id>/retry/", views.retry, name="retry"),
    path("sms/patient/<int:patient_id>/", views.sms_preference, name="sms"),
    path("sms/inbound/", views.sms_inbound, name="sms_inbound"),
]
