"""Background tasks (django-tasks, run by `manage.py db_worker`)."""

from __future__ import annotations

from django_tasks import task


@task()
def run_export(job_id: str) -> str:
    from kapclinic.fhirapi.exports import run

    return run(job_id)
