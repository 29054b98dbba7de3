"""``python manage.py run_job NAME [--now ISO8601]`` runs one periodic job once, synchronously.

``--now`` may not lie more than 5 minutes ahead of the clock, nor before the latest
``last_seen_at`` of the job's unresolved findings (``governance.jobs.job_run``); a refused
``--now`` exits non-zero and writes nothing.
"""

from datetime import UTC, datetime

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from governance.jobs import JOBS, job_get, job_run


def parse_aware(value: str) -> datetime:
    """An ISO 8601 datetime with its UTC offset (``2026-11-15T06:00:00+00:00`` or ``…Z``), in UTC.

    Raises ``CommandError`` for a malformed value or one without an offset (DESIGN.md invariant 3).
    """
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--now {value!r} is not an ISO 8601 datetime, e.g. 2026-11-15T06:00:00Z.")
    if timezone.is_naive(parsed):
        raise CommandError(f"--now {value!r} has no UTC offset; give one, e.g. 2026-11-15T06:00:00Z.")
    return parsed.astimezone(UTC)


class Command(BaseCommand):
    help = "Run one periodic job once, synchronously, and print its counts. --list names the jobs."

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", help="The job to run (see --list).")
        parser.add_argument(
            "--list", dest="list_jobs", action="store_true", help="List the jobs with their default schedules."
        )
        parser.add_argument(
            "--now",
            help=(
                "Run as of this time: ISO 8601 with offset, at most 5 minutes ahead of the clock and not before "
                "the job's findings were last seen. Default: the current time."
            ),
        )

    def handle(self, *args, name=None, list_jobs=False, now=None, **options):
        if list_jobs:
            for job in JOBS.values():
                self.stdout.write(f"{job.name}\t{job.schedule}\t{job.task}")
            return
        if not name:
            raise CommandError(f"Name a job to run; known jobs: {', '.join(sorted(JOBS))}.")
        try:
            job = job_get(name)
        except KeyError as exc:
            raise CommandError(exc.args[0])
        at = parse_aware(now) if now else timezone.now()
        try:
            counts = job_run(job=job, now=at)
        except ValidationError as exc:
            if hasattr(exc, "error_dict") and "now" in exc.error_dict:
                raise CommandError(f"--now refused: {' '.join(exc.message_dict['now'])}")
            raise CommandError(" ".join(exc.messages))
        self.stdout.write(f"{job.name} as of {at.isoformat()}:")
        for key, value in counts.items():
            if isinstance(value, dict):
                detail = ", ".join(f"{k} {v}" for k, v in value.items())
                self.stdout.write(f"  {key}: {detail}")
            else:
                self.stdout.write(f"  {key}: {value}")
