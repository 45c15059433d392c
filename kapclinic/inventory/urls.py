from django.urls import path

from kapclinic.inventory import views

app_name = "inventory"

urlpatterns = [
    path("", views.index, name="index"),
    path("registrations/new/", views.registration_new, name="registration_new"),
    path("products/new/", views.product_new, name="product_new"),
    path("receive/", views.receive, name="receive"),
    path("receipts/<int:receipt_id>/", views.receipt, name="receipt"),
    path("containers/<int:container_id>/", views.container, name="container"),
    path("containers/<int:container_id>/destroy/", views.destroy, name="destroy"),
    path("destructions/", views.destructions, name="destructions"),
    path("counts/", views.counts, name="counts"),
    path("counts/new/", views.count_new, name="count_new"),
    path("counts/<int:count_id>/", views.count, name="count"),
    path("discrepancies/", views.discrepancies, name="discrepancies"),
    path("discrepancies/<int:discrepancy_id>/", views.discrepancy, name="discrepancy"),
    path("losses/", views.losses, name="losses"),
    path("losses/<int:report_id>/filed/", views.loss_filed, name="loss_filed"),
    path("settings/", views.settings_page, name="settings"),
    path("holidays/", views.holidays, name="holidays"),
    path("reports/", views.reports, name="reports"),
    path("reports/receipts/", views.receipt_log, name="receipt_log"),
    path("reports/administrations/", views.administration_log, name="administration_log"),
]
