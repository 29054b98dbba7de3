"""``python manage.py import_inventory SOURCE FILE`` — import an inventory file from the shell.

    import_inventory aws-credential-report report.json
    import_inventory aws-credential-report report.csv --observed-at 2026-11-15T06:00:00+00:00
    import_inventory mcp-config claude_desktop_config.json --agent svc-ticket-triage

Runs as the system actor ("import_inventory command") unless ``--as USERNAME`` names an
active person, whose permissions then apply. Prints a summary; on failure prints the error
and exits non-zero, having written nothing.
"""

from datetime import datetime
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from governance.audit import Actor
from governance.errors import Conflict
from inventory.importers import MCP_CONFIG, SOURCES, run_import
from inventory.models import Agent
from inventory.selectors import agent_get


class Command(BaseCommand):
    help = "Import an AWS IAM credential report, or an MCP client configuration for one agent."

    def add_arguments(self, parser):
        parser.add_argument("source", choices=sorted(SOURCES), help="What the file is.")
        parser.add_argument("file", help="Path of the file to import.")
        parser.add_argument("--agent", metavar="SLUG", help="mcp-config: the agent whose client this configures.")
        parser.add_argument(
            "--observed-at",
            metavar="ISO",
            help="When the report was generated (ISO 8601 with offset); needed for a raw CSV report.",
        )
        parser.add_argument(
            "--as",
            dest="as_user",
            metavar="USERNAME",
            help="Act as this person (their permissions apply); default: the system.",
        )

    def handle(self, *args, source, file, agent=None, observed_at=None, as_user=None, **options):
        actor, user = self._actor(as_user)
        path = Path(file)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror or exc}.")
        when = None
        if observed_at:
            try:
                when = datetime.fromisoformat(observed_at)
            except ValueError:
                raise CommandError(f"--observed-at: {observed_at!r} is not an ISO 8601 timestamp.")
        target = None
        if agent:
            try:
                target = agent_get(user=user, slug=agent) if user is not None else Agent.objects.get(slug=agent)
            except Agent.DoesNotExist:
                raise CommandError(f"--agent: no agent with slug {agent!r}.")
        elif source == MCP_CONFIG:
            raise CommandError("--agent: name the agent (by slug) whose MCP client configuration this is.")
        try:
            run = run_import(
                actor=actor, source=source, content=content, filename=path.name, agent=target, observed_at=when
            )
        except ValidationError as exc:
            raise CommandError(_messages(exc))
        except PermissionDenied as exc:
            raise CommandError(f"Permission denied: {exc}")
        except Conflict as exc:
            raise CommandError(str(exc))
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {source} from {path.name} (sha256 {run.sha256[:12]}…) as import run {run.pk}."
            )
        )
        if run.observed_at:
            self.stdout.write(f"  observed at: {run.observed_at.isoformat()}")
        if run.agent_id:
            self.stdout.write(f"  agent: {target.slug}")
        for key, value in run.summary.items():
            self.stdout.write(f"  {key.replace('_', ' ')}: {value}")

    def _actor(self, username):
        if not username:
            return Actor.system("import_inventory command"), None
        user = get_user_model().objects.filter(username=username).first()
        if user is None or not user.is_active:
            raise CommandError(f"--as: no active person with username {username!r}.")
        return Actor.person(user), user


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)
