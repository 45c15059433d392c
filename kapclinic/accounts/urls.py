from django.urls import path

from kapclinic.accounts import views

app_name = "accounts"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("mfa/", views.mfa, name="mfa"),
    path("mfa/backup/", views.mfa_backup, name="mfa_backup"),
    path("mfa/enrol/", views.mfa_enrol_resume, name="mfa_enrol_resume"),
    path("mfa/enrol/<str:token>/", views.mfa_enrol, name="mfa_enrol"),
    path("backup-codes/", views.backup_codes, name="backup_codes"),
    path("clinic/", views.switch_clinic, name="switch_clinic"),
    path("clinic/details/", views.clinic_details, name="clinic_details"),
    path("password-reset/", views.password_reset, name="password_reset"),
    path("password-reset/sent/", views.password_reset_done, name="password_reset_done"),
    path("password-reset/<uidb64>/<token>/", views.password_reset_confirm, name="password_reset_confirm"),
    path("password-reset/done/", views.password_reset_complete, name="password_reset_complete"),
    path("staff/", views.staff_list, name="staff"),
    path("staff/<int:membership_id>/toggle/", views.staff_toggle, name="staff_toggle"),
    path("staff/<int:membership_id>/mfa-link/", views.staff_mfa_link, name="staff_mfa_link"),
]
