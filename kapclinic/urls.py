from django.urls import include, path

urlpatterns = [
    path("", include("kapclinic.public.urls")),
    path("home/", include("kapclinic.core.urls")),
    path("account/", include("kapclinic.accounts.urls")),
    path("patients/", include("kapclinic.patients.urls")),
    path("audit/", include("kapclinic.audit.urls")),
    path("intake/", include("kapclinic.intake.urls")),
    path("consent/", include("kapclinic.consent.urls")),
    path("treatment/", include("kapclinic.treatment.urls")),
    path("schedule/", include("kapclinic.scheduling.urls")),
    path("sessions/", include("kapclinic.sessions.urls")),
    path("measures/", include("kapclinic.measures.urls")),
    path("notes/", include("kapclinic.notes.urls")),
    path("portal/", include("kapclinic.portal.urls")),
    path("interop/", include("kapclinic.interop.urls")),
    path("messages/", include("kapclinic.messaging.urls")),
    path("drafts/", include("kapclinic.drafts.urls")),
    path("inventory/", include("kapclinic.inventory.urls")),
    path("billing/", include("kapclinic.billing.urls")),
    path("documents/", include("kapclinic.documents.urls")),
    path("fhir/", include("kapclinic.fhirapi.urls")),
    path("conversations/", include("kapclinic.conversations.urls")),
    path("notifications/", include("kapclinic.notifications.urls")),
]

handler400 = "kapclinic.core.views.error_400"
handler404 = "kapclinic.core.views.error_404"
handler403 = "kapclinic.core.views.error_403"
handler500 = "kapclinic.core.views.error_500"
