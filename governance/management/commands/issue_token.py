"""``python manage.py issue_token USERNAME --scopes a,b [--days N] [--name NAME]`` issues an API token.

For operators bootstrapping an integration (an agent runtime, an MCP gateway, CI) from the host:
the same service as the Tokens page (``governance.services.integration_token_issue``), acting as
the system, so the person's role still limits the scopes (OWASP NHI Top 10 2025, NHI5). Prints
the clear token once, on its own line; only its SHA-256 digest is stored (invariant 9).
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from governance.audit import Actor
from governance.services import integration_token_issue


class Command(BaseCommand):
    help = "Issue an API token for a person, within the scopes their role allows, and print it once."

    def add_arguments(self, parser):
        parser.add_argument("username", help="The person the token acts for.")
        parser.add_argument("--scopes", required=True, help="Comma-separated, e.g. decisions:check,tokens:issue.")
        parser.add_argument("--days", type=int, default=30, help="Days until it expires (default 30).")
        parser.add_argument("--name", default="", help="The integration that will use it (default: issued from CLI).")

    def handle(self, *args, username, scopes, days, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No person named {username!r}.")
        if days < 1:
            raise CommandError("--days must be at least 1.")
        try:
            _, clear = integration_token_issue(
                actor=Actor.system("issue_token command"),
                user=user,
                name=name or f"{username} (issued from the command line)",
                scopes=[s.strip() for s in scopes.split(",") if s.strip()],
                expires_at=timezone.now() + timedelta(days=days),
            )
        except ValidationError as exc:
            problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise CommandError(problems) from None
        self.stdout.write(clear)
