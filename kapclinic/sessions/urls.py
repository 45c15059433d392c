from django.urls import path

from kapclinic.sessions import views

app_name = "sessions"

P = "patient/<int:patient_id>/"
S = P + "<int:session_id>/"

urlpatterns = [
    path("", views.index, name="index"),
    path("settings/", views.clinic_settings, name="settings"),
    path("settings/protocol/<str:protocol_id>/", views.clinic_settings_protocol, name="settings_protocol"),
    path("settings/measures/", views.clinic_settings_measures, name="settings_measures"),
    path("settings/alerts/", views.clinic_settings_alerts, name="settings_alerts"),
    path(P + "new/", views.new, name="new"),
    path("appointment/<int:appointment_id>/start/", views.start_from_appointment, name="start"),
    path(S, views.detail, name="detail"),
    path(S + "monitor/", views.monitor, name="monitor"),
    path(S + "transition/", views.transition, name="transition"),
    path(S + "abort/", views.abort, name="abort"),
    path(S + "gate/", views.gate, name="gate"),
    path(S + "gate/pass/", views.gate_pass, name="gate_pass"),
    path(S + "gate/override/", views.override, name="override"),
    path(S + "vitals/", views.vitals, name="vitals"),
    path(S + "rating/<str:kind>/", views.rating, name="rating"),
    path(S + "event/<str:kind>/", views.event, name="event"),
    path(S + "alerts/<int:alert_id>/acknowledge/", views.acknowledge, name="acknowledge"),
    path(S + "dose/", views.dose, name="dose"),
    path(S + "dose/card/", views.dose_card, name="dose_card"),
    path(S + "dose/double-check/", views.double_check, name="double_check"),
    path(S + "dose/cosign/", views.cosign, name="cosign"),
    path(S + "dose/double-check/withdraw/", views.double_check_withdraw, name="double_check_withdraw"),
    path(S + "dose/start/", views.start_dosing, name="start_dosing"),
    path(S + "dose/device/", views.device, name="device"),
    path(S + "dose/infusion-stop/", views.infusion_stop, name="infusion_stop"),
    path(S + "dose/lozenge/", views.lozenge, name="lozenge"),
    path(S + "stock/waste/", views.stock_waste, name="stock_waste"),
    path(S + "stock/disposal/", views.stock_disposal, name="stock_disposal"),
    path(S + "stock/unused/", views.stock_unused, name="stock_unused"),
    path(S + "vitals/missed/", views.missed_check, name="missed_check"),
    path(S + "discharge/", views.discharge, name="discharge"),
    path(S + "adverse-event/", views.adverse_event, name="adverse_event"),
    path(S + "process-note/", views.process_note, name="process_note"),
    path(S + "rems/", views.rems, name="rems"),
    path(S + "rems/submitted/", views.rems_submitted, name="rems_submitted"),
]
