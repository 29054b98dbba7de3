"""``python manage.py ensure_schedule`` creates the missing Celery beat schedule rows for every job."""

from django.core.management.base import BaseCommand

from governance.audit import Actor
from governance.jobs import JOBS, jobs_schedule_ensure


class Command(BaseCommand):
    help = (
        "Create the django-celery-beat PeriodicTask (and CrontabSchedule) of every job that has none. "
        "Existing rows, and any admin edits to them, are kept. Safe to run at every deploy."
    )

    def handle(self, *args, **options):
        created = jobs_schedule_ensure(actor=Actor.system("ensure_schedule"))
        for name in JOBS:
            state = "created" if name in created else "kept"
            self.stdout.write(f"{name}: {state}")
