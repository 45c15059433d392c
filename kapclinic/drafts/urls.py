from django.urls import path

from kapclinic.drafts import views

app_name = "drafts"

urlpatterns = [
    path("<str:key>/<int:object_id>/", views.draft, name="draft"),
    path("<str:key>/<int:object_id>/discard/", views.discard, name="discard"),
]
