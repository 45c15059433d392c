from django.urls import path

from kapclinic.fhirapi import auth_views, group_views, views

app_name = "fhirapi"

urlpatterns = [
    path("metadata", views.metadata, name="metadata"),
    path(".well-known/smart-configuration", auth_views.smart_configuration, name="smart_configuration"),
    path(".well-known/openid-configuration", auth_views.openid_configuration, name="openid_configuration"),
    path("auth/authorize", auth_views.authorize, name="authorize"),
    path("auth/jwks", auth_views.jwks, name="jwks"),
    path("auth/userinfo", auth_views.userinfo, name="userinfo"),
    path("auth/token", auth_views.token, name="token"),
    path("auth/clients/", auth_views.client_list, name="clients"),
    path("auth/clients/<int:client_id>/revoke", auth_views.client_revoke, name="client_revoke"),
    path("auth/groups/", group_views.group_list, name="groups"),
    path("auth/groups/new", group_views.group_create, name="group_create"),
    path("auth/groups/<int:group_id>/", group_views.group_edit, name="group_edit"),
    path("auth/groups/<int:group_id>/deactivate", group_views.group_deactivate, name="group_deactivate"),
    path("auth/my-apps/", auth_views.my_apps, name="my_apps"),
    path("auth/my-apps/<int:application_id>/revoke", auth_views.my_app_revoke, name="my_app_revoke"),
    path("Patient/$export", views.export_kickoff, name="export_patients"),
    path("Group/<str:group_id>/$export", views.export_kickoff, name="export_group"),
    path("$export-status/<uuid:job_id>", views.export_status, name="export_status"),
    path("$export-file/<uuid:job_id>/<str:name>", views.export_file, name="export_file"),
    path("<str:resource_type>/<str:resource_id>", views.read, name="read"),
    path("<str:resource_type>", views.search, name="search"),
]
