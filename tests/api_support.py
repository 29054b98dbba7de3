"""Helpers for the REST API tests: callers in every role, and the generated permission matrix.

Each endpoint and action is one ``Case`` with the status every caller expects; ``run_case``
sends the request and asserts the status, that a successful write left its audit event (verb
and actor) and that a refused one wrote nothing. Every error response is JSON.

Tokens carry only the scopes their user's role can use (``token_scopes_for``): the owner's and
the admin's tokens get the case's scope, the auditor's token gets it only when an auditor may
hold it (reads) and ``inventory:read`` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from governance.audit import Actor
from governance.models import AuditEvent, IntegrationToken
from governance.services import integration_token_issue, token_scopes_for
from tests.factories import T0

ROLES = (
    "anonymous",
    "owner",
    "other_owner",
    "admin",
    "auditor",
    "token",
    "token_without_scope",
    "admin_token",
    "auditor_token",
)
ALL_SCOPES = tuple(IntegrationToken.Scope.values)
READ = IntegrationToken.Scope.INVENTORY_READ
WRITE = IntegrationToken.Scope.INVENTORY_WRITE


def expect(
    *,
    owner: int,
    other_owner: int,
    admin: int,
    auditor: int,
    anonymous: int = 401,
    token: int | None = None,
    token_without_scope: int = 403,
    admin_token: int | None = None,
    auditor_token: int | None = None,
) -> dict[str, int]:
    """Expected status per caller. A token acts for its user: ``token`` is the owner's token
    (defaults to the owner's status), ``admin_token`` an IAM admin's (defaults to the admin's),
    ``auditor_token`` an auditor's (defaults to the auditor's: reads as they do, never writes)."""
    return {
        "anonymous": anonymous,
        "owner": owner,
        "other_owner": other_owner,
        "admin": admin,
        "auditor": auditor,
        "token": owner if token is None else token,
        "token_without_scope": token_without_scope,
        "admin_token": admin if admin_token is None else admin_token,
        "auditor_token": auditor if auditor_token is None else auditor_token,
    }


READ_ALL = expect(owner=200, other_owner=200, admin=200, auditor=200)
READ_OWN = expect(owner=200, other_owner=404, admin=200, auditor=200)
CHANGE_OWN = expect(owner=200, other_owner=404, admin=200, auditor=403)
DELETE_OWN = expect(owner=204, other_owner=404, admin=204, auditor=403)
CREATE_FOR_OWN_AGENT = expect(owner=201, other_owner=403, admin=201, auditor=403)
ADMIN_ONLY_ON_OWN = expect(owner=403, other_owner=404, admin=200, auditor=403)
ADMIN_ONLY = expect(owner=403, other_owner=403, admin=200, auditor=403)
ADMIN_ONLY_CREATE = expect(owner=403, other_owner=403, admin=201, auditor=403)

TOKEN_ROLES = {"token": "owner", "token_without_scope": "owner", "admin_token": "admin", "auditor_token": "auditor"}


@dataclass(frozen=True)
class Case:
    """One request of the matrix. ``url`` and ``body`` are built from the world (a dict of objects)."""

    name: str
    method: str
    url: Callable[[dict], str]
    expected: dict[str, int]
    body: Callable[[dict], dict] | None = None
    verb: str | None = None
    scope: str = READ
    format: str = "json"
    extra: dict = field(default_factory=dict)

    def __str__(self):
        return self.name


def matrix(cases: list[Case]) -> list[tuple[Case, str]]:
    """Every (case, role) pair, for ``pytest.mark.parametrize``."""
    return [(case, role) for case in cases for role in ROLES]


def matrix_ids(cases: list[Case]) -> list[str]:
    return [f"{case.name}-{role}" for case in cases for role in ROLES]


def issue_token(user, scopes, *, days: int = 30) -> tuple[IntegrationToken, str]:
    """An integration token for ``user`` with ``scopes``, expiring ``days`` after T0."""
    return integration_token_issue(
        actor=Actor.system("test"),
        user=user,
        name=f"{user.username} integration",
        scopes=list(scopes),
        expires_at=T0 + timedelta(days=days),
    )


def token_client(clear: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")
    return client


def session_client(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def caller(role: str, people: dict, scope: str) -> tuple[APIClient, Callable[[AuditEvent], bool]]:
    """The client for ``role`` and a predicate saying whether an audit event's actor is that caller."""
    if role == "anonymous":
        return APIClient(), lambda e: False
    if role in TOKEN_ROLES:
        user = people[TOKEN_ROLES[role]]
        allowed = token_scopes_for(user)
        if role == "token_without_scope":
            scopes = [s for s in ALL_SCOPES if s != scope and s in allowed]
        else:
            scopes = [scope] if scope in allowed else [READ]
        token, clear = issue_token(user, scopes)
        return token_client(clear), lambda e: e.actor_type == "integration" and e.actor_id == str(token.pk)
    user = people[role]
    return session_client(user), lambda e: e.actor_type == "person" and e.actor_label == user.username


def run_case(case: Case, role: str, world: dict) -> object:
    """Send ``case`` as ``role``; assert the status and the audit trail. Returns the response."""
    client, is_caller = caller(role, world["people"], case.scope)
    url = case.url(world)
    body = case.body(world) if case.body else None
    last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    send = getattr(client, case.method)
    response = send(url, body, format=case.format) if case.method in ("post", "patch") else send(url)
    expected = case.expected[role]
    assert response.status_code == expected, (case.name, role, response.status_code, getattr(response, "data", None))
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("application/json"), (case.name, role, response["Content-Type"])
    new_events = list(AuditEvent.objects.filter(id__gt=last).order_by("id"))
    if case.method == "get" or response.status_code >= 400:
        assert new_events == [], f"{case.name} as {role} wrote {[e.verb for e in new_events]}"
    elif case.verb:
        mine = [e for e in new_events if e.verb == case.verb]
        assert mine, f"{case.name} as {role}: no {case.verb!r} audit event among {[e.verb for e in new_events]}"
        assert all(is_caller(e) for e in mine), [(e.actor_type, e.actor_label) for e in mine]
    return response


def count_queries(client: APIClient, url: str) -> int:
    """Number of database queries a GET of ``url`` makes (asserting it succeeds)."""
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.data
    return len(ctx.captured_queries)
