"""The integration guide's example (``docs/examples/agent_runtime.py``) runs against a live server:
ask → allow → task token → introspect active → revoke → introspect inactive → denied outside scope."""

import importlib.util
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine

from delegations.models import TaskToken
from governance.models import IntegrationToken
from tests.api_support import issue_token
from tests.factories import T0, AgentFactory, GrantFactory, OwnerFactory, ToolFactory, WorkloadIdentityFactory

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "agent_runtime.py"
S = IntegrationToken.Scope


def load_example():
    spec = importlib.util.spec_from_file_location("agent_runtime_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def demo(transactional_db):
    with time_machine.travel(T0, tick=True):
        owner = OwnerFactory(username="olivia")
        agent = AgentFactory(owner=owner, slug="support-triage", data_classes=["pii"], risk_tier="medium")
        ToolFactory(agent=agent, name="zendesk", access_levels=["read", "write"], data_classes=["pii"])
        ToolFactory(agent=agent, name="knowledge-base", access_levels=["read", "write"])
        WorkloadIdentityFactory(agent=agent, identifier=load_example().DEMO_AGENT)
        grant = GrantFactory(
            agent=agent,
            intents=["ticket-triage"],
            scopes=[("zendesk", "read", "ticket/*"), ("knowledge-base", "read", "")],
            expires_at=T0 + timedelta(days=3),
        )
        _, clear = issue_token(owner, [S.DECISIONS_CHECK, S.TOKENS_ISSUE, S.TOKENS_INTROSPECT])
        yield grant, clear


def test_the_example_tells_the_whole_story(demo, live_server, capsys):
    grant, clear = demo
    example = load_example()
    with time_machine.travel(T0 + timedelta(minutes=5), tick=True):
        assert example.run(["--url", live_server.url, "--token", clear]) == 0
    out = capsys.readouterr().out
    assert f"allow — grant {grant.pk}" in out
    assert "active=True scope=" in out and "zendesk:read" in out
    assert "signature verified with key" in out
    assert "introspection now says {'active': False}" in out
    assert "deny — access_not_granted" in out
    token = TaskToken.objects.get()
    assert token.grant_id == grant.pk and token.revoked_at is not None


def test_the_example_reports_a_refusal(demo, live_server, capsys):
    _, clear = demo
    example = load_example()
    with time_machine.travel(T0 + timedelta(minutes=5), tick=True):
        assert example.run(["--url", live_server.url, "--token", clear, "--resource", "invoice/1"]) == 1
    assert "resource_outside_pattern" in capsys.readouterr().out


def test_the_example_says_plainly_when_warrant_is_not_running(capsys):
    assert load_example().run(["--url", "http://127.0.0.1:9", "--token", "wrt_x"]) == 1
    assert "Cannot reach Warrant at http://127.0.0.1:9" in capsys.readouterr().out
