"""Fixtures for delegation tests: a second and third IAM admin (approvers), an agent with tools."""

import pytest

from governance.audit import Actor
from tests.factories import AgentFactory, IamAdminFactory, ToolFactory


@pytest.fixture
def approver(db):
    return IamAdminFactory(username="amara.approver")


@pytest.fixture
def second_approver(db):
    return IamAdminFactory(username="bruno.approver")


@pytest.fixture
def approver_actor(approver):
    return Actor.person(approver)


@pytest.fixture
def second_approver_actor(second_approver):
    return Actor.person(second_approver)


@pytest.fixture
def low_agent(owner):
    """An active low-tier agent of ``owner`` with tools ``github`` (read, write) and ``jira`` (read, write, execute)."""
    agent = AgentFactory(owner=owner, name="Ticket triage", slug="ticket-triage", risk_tier="low")
    ToolFactory(agent=agent, name="github", access_levels=["read", "write"])
    ToolFactory(agent=agent, name="jira", access_levels=["read", "write", "execute"])
    return agent


@pytest.fixture
def high_agent(owner):
    """An active high-tier agent of ``owner`` with tool ``github`` (read, write)."""
    agent = AgentFactory(owner=owner, name="Deploy bot", slug="deploy-bot", risk_tier="high")
    ToolFactory(agent=agent, name="github", access_levels=["read", "write"])
    return agent
