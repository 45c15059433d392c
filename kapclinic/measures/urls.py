from django.urls import path

from kapclinic.measures import views

app_name = "measures"

urlpatterns = [
    path("", views.index, name="index"),
    path("outcomes/", views.outcomes, name="outcomes"),
    path("patients/<int:patient_id>/", views.patient, name="patient"),
    path("patients/<int:patient_id>/history/<str:instrument>/", views.history, name="history"),
    path("patients/<int:patient_id>/enter/<str:instrument>/", views.enter, name="enter"),
    path("patients/<int:patient_id>/send/<str:instrument>/", views.send_link, name="send_link"),
    path("patients/<int:patient_id>/restart/<str:instrument>/", views.restart, name="restart"),
    path("patients/<int:patient_id>/alerts/<int:alert_id>/", views.acknowledge, name="acknowledge"),
    path("patients/<int:patient_id>/safety-plan/", views.safety_plan, name="safety_plan"),
    path("patients/<int:patient_id>/schedule/", views.schedule, name="schedule"),
    path("my/", views.my, name="my"),
    path("my/take/<str:instrument>/", views.my_take, name="my_take"),
    path("my/done/<int:response_id>/", views.my_done, name="my_done"),
    path("my/safety-plan/", views.my_safety_plan, name="my_safety_plan"),
    path("r/<str:token>/", views.link, name="link"),
    path("r/<str:token>/done/", views.link_done, name="link_done"),
]
