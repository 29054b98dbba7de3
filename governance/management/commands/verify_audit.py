"""``python manage.py verify_audit`` walks the audit hash chain and reports the first broken row."""

from django.core.management.base import BaseCommand, CommandError

from governance.audit import audit_verify
from governance.models import AuditEvent


class Command(BaseCommand):
    help = (
        "Verify the audit log's hash chain. Exit 0 and 'audit chain intact: N events', or exit 1 naming "
        "the first changed, inserted or deleted row."
    )

    def handle(self, *args, **options):
        count = AuditEvent.objects.count()
        broken = audit_verify()
        if broken is not None:
            raise CommandError(f"audit chain broken at event {broken.event_id}: {broken.problem}", returncode=1)
        self.stdout.write(f"audit chain intact: {count} events")
