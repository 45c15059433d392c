"""Background tasks of the measures app (django-tasks, run by `manage.py db_worker`)."""

from __future__ import annotations

from django_tasks import task


@task(priority=50)
def check_alert_escalation(alert_id: int) -> str:
    """Queued when an alert is raised, to run at the clinic's escalation time."""
    from kapclinic.measures.services import alert_check_escalation

    return alert_check_escalation(alert_id)
