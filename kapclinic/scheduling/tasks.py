"""Background tasks (django-tasks; the database backend in demo/production, run by `manage.py db_worker`)."""

from __future__ import annotations

from django_tasks import task


@task()
def send_reminder(reminder_id: int) -> str:
    from kapclinic.scheduling.services import reminder_deliver

    return reminder_deliver(reminder_id)
