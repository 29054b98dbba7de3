"""``python manage.py verify_audit [--expect-head ID:HASH]`` walks the audit hash chain and reports its head.

Exit 0 with ``audit chain intact: N events`` and ``head: id=… hash=…`` (record the head outside
the database: it is the anchor that reveals a later deletion of the newest events); exit 1
naming the first changed, inserted or deleted row, or — with ``--expect-head`` — a recorded
head that is missing, changed or no longer on the chain.
"""

from django.core.management.base import BaseCommand, CommandError

from governance.audit import audit_check, parse_head


class Command(BaseCommand):
    help = (
        "Verify the audit log's hash chain and print its head (id and hash) to record elsewhere. "
        "Exit 0 and 'audit chain intact: N events', or exit 1 naming the first changed, inserted or "
        "deleted row. --expect-head ID:HASH (a head recorded earlier) also fails when that event is "
        "missing or changed or the chain no longer extends through it, i.e. when the newest events were deleted."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--expect-head",
            metavar="ID:HASH",
            help="A chain head recorded earlier (from this command or the record-audit-head job's log line).",
        )

    def handle(self, *args, expect_head=None, **options):
        anchor = None
        if expect_head is not None:
            try:
                anchor = parse_head(expect_head)
            except ValueError as exc:
                raise CommandError(f"--expect-head {exc}", returncode=2)
        report = audit_check(expect_head=anchor)
        if report.broken is not None:
            broken = report.broken
            raise CommandError(f"audit chain broken at event {broken.event_id}: {broken.problem}", returncode=1)
        self.stdout.write(f"audit chain intact: {report.events} events")
        if report.head is None:
            self.stdout.write("head: none (no events yet)")
        else:
            self.stdout.write(f"head: {report.head}")
        if anchor is not None:
            self.stdout.write(f"recorded head id={anchor[0]} matches: the chain extends through it")
