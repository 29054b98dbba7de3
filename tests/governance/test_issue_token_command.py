"""``manage.py issue_token``: prints a working token once, within the person's role, or refuses."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from governance.models import IntegrationToken
from governance.services import token_digest
from tests.factories import T0

pytestmark = pytest.mark.django_db


def test_issues_a_token_within_the_role_and_prints_it_once(frozen_now, owner):
    out = StringIO()
    call_command("issue_token", "olivia.owner", "--scopes", "decisions:check,tokens:issue", "--days", "2", stdout=out)
    clear = out.getvalue().strip()
    token = IntegrationToken.objects.get(digest=token_digest(clear))
    assert token.user == owner and sorted(token.scopes) == ["decisions:check", "tokens:issue"]
    assert token.expires_at == T0 + timedelta(days=2)
    assert clear not in str(IntegrationToken.objects.values_list(flat=False))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody", "--scopes", "decisions:check"], "No person named 'nobody'"),
        (["olivia.owner", "--scopes", "everything"], "Unknown scopes: everything"),
        (["aude.auditor", "--scopes", "decisions:check"], "role does not allow decisions:check"),
        (["olivia.owner", "--scopes", "decisions:check", "--days", "0"], "--days must be at least 1"),
    ],
)
def test_refuses_with_a_clear_message_and_writes_nothing(frozen_now, owner, auditor, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("issue_token", *args, stdout=StringIO())
    assert not IntegrationToken.objects.exists()
