"""Model validation of tools and credentials: no literal secret passes ``full_clean`` (invariant 9)."""

import pytest
from django.core.exceptions import ValidationError

from inventory.models import Credential, Tool
from tests.factories import CredentialFactory, ToolFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

GITHUB = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
OPENAI = "sk-proj-abc123def456ghi789jkl012"


def errors_of(obj) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as exc:
        obj.full_clean()
    return exc.value.message_dict


@pytest.mark.parametrize(
    ("changes", "field", "secret"),
    [
        (
            {"transport": Tool.Transport.HTTP, "url": f"https://user:hunter2@db.example.com/x?api_key={OPENAI}"},
            "url",
            "hunter2",
        ),
        ({"transport": Tool.Transport.HTTP, "url": f"https://mcp.example.com/mcp?api_key={OPENAI}"}, "url", OPENAI),
        ({"args": ["--token", GITHUB]}, "args", GITHUB),
        ({"args": ["--password=opensesame"]}, "args", "opensesame"),
        ({"env_keys": [f"GITHUB_TOKEN={GITHUB}"]}, "env_keys", GITHUB),
        ({"command": f"env GITHUB_TOKEN={GITHUB} npx"}, "command", GITHUB),
        ({"source": f"pasted {GITHUB}"}, "source", GITHUB),
    ],
)
def test_a_tool_refuses_a_literal_secret_keyed_on_its_field_without_echo(changes, field, secret):
    tool = ToolFactory.build(agent=ToolFactory().agent, **changes)
    errors = errors_of(tool)
    assert list(errors) == [field]
    assert errors[field][0].startswith("This looks like a secret (")
    assert secret not in str(errors)


def test_a_tool_accepts_references_and_redacted_values():
    agent = ToolFactory().agent
    tool = ToolFactory.build(
        agent=agent,
        transport=Tool.Transport.HTTP,
        url="https://bot:REDACTED@mcp.example.com/mcp?api_key=${API_KEY}&region=eu",
        args=["--token", "${TOKEN}", "--key=${input:key}", "--password=REDACTED"],
        env_keys=["GITHUB_TOKEN", "AWS_ACCESS_KEY_ID"],
    )
    tool.full_clean()


@pytest.mark.parametrize("env_keys", [["GITHUB_TOKEN=x"], ["MY-VAR"], ["1ST"], "GITHUB_TOKEN"])
def test_tool_env_keys_are_variable_names_only(env_keys):
    errors = errors_of(ToolFactory.build(agent=ToolFactory().agent, env_keys=env_keys))
    assert list(errors) == ["env_keys"]


@pytest.mark.parametrize(
    ("changes", "field", "secret"),
    [
        ({"external_id": OPENAI}, "external_id", OPENAI),
        ({"external_id": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlMTIz"}, "external_id", "c2lnbmF0dXJlMTIz"),
        ({"label": f"CI token {GITHUB}"}, "label", GITHUB),
        ({"label": "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA"}, "label", "MIIEpAIBAAKCAQEA"),
        ({"fingerprint": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}, "fingerprint", "wJalrXUtnFEMI"),
        ({"fingerprint": "sha256:ab12"}, "fingerprint", None),
    ],
)
def test_a_credential_refuses_secrets_and_malformed_fingerprints(changes, field, secret):
    credential = CredentialFactory.build(agent=CredentialFactory().agent, **changes)
    errors = errors_of(credential)
    assert list(errors) == [field]
    if secret:
        assert secret not in str(errors)


def test_a_credential_keeps_aws_key_ids_and_arn_slots():
    agent = CredentialFactory().agent
    for external_id in ("AKIAIOSFODNN7EXAMPLE", "arn:aws:iam::123456789012:user/sk-build-agent-2024#access_key_1"):
        CredentialFactory.build(
            agent=agent, external_id=external_id, label="Deploy key", fingerprint="sha256:" + "0f" * 32
        ).full_clean()
    assert Credential.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["invoice\u202eagent", "pay\u200bments", "bell\x07"])
def test_names_refuse_control_and_invisible_characters(name, owner):
    from governance.audit import Actor
    from inventory import services
    from inventory.models import Agent

    with pytest.raises(ValidationError) as info:
        services.agent_register(actor=Actor.system(), name=name, kind="assistant", owner=owner)
    assert "name" in info.value.message_dict
    assert not Agent.objects.exists()


@pytest.mark.django_db
def test_names_in_any_script_are_fine(owner):
    from governance.audit import Actor
    from inventory import services

    agent = services.agent_register(actor=Actor.system(), name="請求書エージェント", kind="assistant", owner=owner)
    assert agent.name == "請求書エージェント"
