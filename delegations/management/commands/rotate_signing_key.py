"""``python manage.py rotate_signing_key`` makes a new task-token signing key; the previous one keeps verifying."""

from django.core.management.base import BaseCommand
from django.utils import timezone

from delegations.models import SigningKey
from delegations.tokens import signing_key_rotate
from governance.audit import Actor


class Command(BaseCommand):
    help = (
        "Rotate the task-token signing key: a new ES256 key signs from now on; the previous active key becomes "
        "retiring (still published in the JWK Set and still verifying tokens in flight) until the "
        "retire-signing-keys job retires it. With no key yet, creates the first one. Audited as the system."
    )

    def handle(self, *args, **options):
        previous = SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).values_list("kid", flat=True).first()
        key = signing_key_rotate(actor=Actor.system("rotate_signing_key"), now=timezone.now())
        self.stdout.write(f"active: {key.kid}")
        if previous:
            self.stdout.write(f"retiring: {previous}")
