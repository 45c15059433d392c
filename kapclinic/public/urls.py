from django.urls import path

from kapclinic.public import views

app_name = "public"

urlpatterns = [
    path("", views.index, name="index"),
    path("kap/evidence/", views.evidence, name="evidence"),
    path("kap/risks/", views.risks, name="risks"),
    path("kap/who-may-not-be-a-candidate/", views.candidates, name="candidates"),
    path("kap/what-to-expect/", views.expect, name="expect"),
    path("kap/with-psychotherapy/", views.therapies, name="therapies"),
    path("is-kap-right-for-me/", views.self_check, name="self_check"),
    path("contact/", views.inquiry, name="inquiry"),
    path("contact/sent/", views.inquiry_sent, name="inquiry_sent"),
]
