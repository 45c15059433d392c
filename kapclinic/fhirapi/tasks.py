"""Background tasks (django-tasks, run by `manage.py db_worker`)."""

from __future__ import annotations

from django_tasks import task


@task()
def run_export(job_id: str) -> str:
    """Plan a job and queue its parts (jobs queued before exports were cut into parts; kick-off now
    queues the parts itself, exports.start)."""
    from kapclinic.fhirapi.exports import run

    return run(job_id)


@task()
def run_export_part(job_id: str, index: int) -> str:
    from kapclinic.fhirapi.exports import run_part

    return run_part(job_id, index)
