"""Background tasks (django-tasks; the database backend in demo/production, run by `manage.py db_worker`)."""

from __future__ import annotations

from django_tasks import task


@task()
def send_message(message_id: int) -> str:
    from kapclinic.messaging.services import deliver

    return deliver(message_id)
