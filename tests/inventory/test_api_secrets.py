"""The REST API refuses literal secrets in tools and credentials (invariant 9): 400 naming the field,
the value never echoed, nothing written, no audit event; a ``${REFERENCE}`` is accepted."""

import json

import pytest

from governance.models import AuditEvent
from inventory.models import Credential, Tool
from tests.api_support import session_client
from tests.factories import AgentFactory, CredentialFactory, ToolFactory

TOOLS = "/api/v1/tools/"
CREDENTIALS = "/api/v1/credentials/"
GITHUB = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
OPENAI = "sk-proj-abc123def456ghi789jkl012"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\n-----END OPENSSH PRIVATE KEY-----"

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]


@pytest.fixture
def agent(owner):
    return AgentFactory(slug="own", owner=owner)


@pytest.fixture
def client(owner):
    return session_client(owner)


def counts() -> tuple[int, int, int]:
    return Tool.objects.count(), Credential.objects.count(), AuditEvent.objects.count()


def assert_refused(response, field: str, secret: str, before: tuple) -> None:
    assert response.status_code == 400, response.data
    assert field in response.data, response.data
    assert str(response.data[field][0]).startswith("This looks like a secret (")
    assert secret not in response.content.decode()
    assert counts() == before


def http_tool(**fields) -> dict:
    return {"agent": "own", "name": "db", "transport": "http", "url": "https://mcp.example.com/mcp", **fields}


TOOL_SECRETS = [
    (http_tool(url="https://user:hunter2@db.example.com/mcp"), "url", "hunter2"),
    (http_tool(url=f"https://db.example.com/mcp?api_key={OPENAI}"), "url", OPENAI),
    (http_tool(url=f"https://db.example.com/mcp?access_token={JWT}"), "url", JWT),
    (http_tool(url=f"https://{GITHUB}@github.com/acme/repo.git"), "url", GITHUB),
    (http_tool(args=["--token", GITHUB]), "args", GITHUB),
    (http_tool(args=["--api-key", "abcd1234efgh"]), "args", "abcd1234efgh"),
    (http_tool(args=["--header", "Authorization: Bearer abcdef1234567890"]), "args", "abcdef1234567890"),
    (http_tool(args=["--key", PRIVATE_KEY]), "args", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU"),
    (http_tool(args=["--slack", "xoxb-1234567890-abcdefghij"]), "args", "xoxb-1234567890-abcdefghij"),
    (http_tool(args=["--gitlab", "glpat-abcdefghij0123456789"]), "args", "glpat-abcdefghij0123456789"),
    (http_tool(env_keys=[f"GITHUB_TOKEN={GITHUB}"]), "env_keys", GITHUB),
    (
        {"agent": "own", "name": "gh", "transport": "stdio", "command": f"env GITHUB_TOKEN={GITHUB} npx"},
        "command",
        GITHUB,
    ),
    # a secret with something next to it
    (http_tool(args=["--creds", f"{AWS_KEY_ID}:{AWS_SECRET}"]), "args", AWS_SECRET),
    (http_tool(args=["--creds", f"{AWS_KEY_ID}{AWS_SECRET}"]), "args", AWS_SECRET),
    (http_tool(args=["--creds", f"{AWS_SECRET},"]), "args", AWS_SECRET),
    (http_tool(args=["--creds", f" {AWS_SECRET}"]), "args", AWS_SECRET),
    (http_tool(args=[f"--token={GITHUB}"]), "args", GITHUB),
    (http_tool(args=["PASSWORD=hunter2hunter2"]), "args", "hunter2hunter2"),
    (http_tool(args=["--env", "USER=bot,PASSWORD=hunter2hunter2"]), "args", "hunter2hunter2"),
]


@pytest.mark.parametrize(("body", "field", "secret"), TOOL_SECRETS, ids=range(len(TOOL_SECRETS)))
def test_posting_a_tool_with_a_literal_secret_is_refused(client, agent, body, field, secret):
    before = counts()
    assert_refused(client.post(TOOLS, body, format="json"), field, secret, before)


def test_tool_env_keys_must_be_names(client, agent):
    before = counts()
    response = client.post(TOOLS, http_tool(env_keys=["GITHUB_TOKEN=abc"]), format="json")
    assert response.status_code == 400 and "env_keys" in response.data
    assert "names only" in str(response.data["env_keys"][0])
    assert counts() == before


def test_a_tool_with_references_is_accepted_and_audited(client, agent):
    body = http_tool(
        url="https://mcp.example.com/mcp?api_key=${API_KEY}",
        args=["--token", "${TOKEN}", "--key=${input:key}"],
        env_keys=["TOKEN", "API_KEY"],
    )
    response = client.post(TOOLS, body, format="json")
    assert response.status_code == 201, response.data
    tool = Tool.objects.get()
    assert (tool.url, tool.args, tool.env_keys) == (body["url"], body["args"], body["env_keys"])
    assert AuditEvent.objects.filter(verb="tool.add").count() == 1


def test_patching_a_secret_into_a_tool_is_refused(client, agent):
    tool = ToolFactory(agent=agent, name="fs")
    before = counts()
    response = client.patch(f"{TOOLS}{tool.pk}/", {"args": ["--token", GITHUB]}, format="json")
    assert_refused(response, "args", GITHUB, before)
    tool.refresh_from_db()
    assert tool.args == ["-y", "mcp-server"]


@pytest.mark.parametrize(
    "args",
    [
        ["--creds", f"{AWS_KEY_ID}:{AWS_SECRET}"],
        ["--creds", f"{AWS_SECRET},"],
        ["--creds", f" {AWS_SECRET}"],
        ["PASSWORD=hunter2hunter2"],
        [f"--token={GITHUB}"],
    ],
)
def test_patching_a_secret_next_to_something_into_args_is_refused(client, agent, args):
    tool = ToolFactory(agent=agent, name="fs")
    before = counts()
    response = client.patch(f"{TOOLS}{tool.pk}/", {"args": args}, format="json")
    secret = AWS_SECRET if AWS_SECRET in args[-1] else args[-1].split("=", 1)[1]
    assert_refused(response, "args", secret, before)
    tool.refresh_from_db()
    assert tool.args == ["-y", "mcp-server"]


def test_arns_urls_paths_and_references_next_to_a_key_id_are_accepted(client, agent):
    body = http_tool(
        args=[
            "--role",
            "arn:aws:iam::123456789012:user/x#access_key_1",
            "--creds",
            f"{AWS_KEY_ID}:${{AWS_SECRET_ACCESS_KEY}}",
            "--out",
            "/Users/alice/Projects/Warrant2/src/appx",
            "--name",
            "sk-build-agent-2024",
        ]
    )
    response = client.post(TOOLS, body, format="json")
    assert response.status_code == 201, response.data
    assert Tool.objects.get().args == body["args"]
    response = client.post(
        CREDENTIALS,
        credential(provider="aws", kind="access_key", external_id="arn:aws:iam::123456789012:user/x#access_key_1"),
        format="json",
    )
    assert response.status_code == 201, response.data


def credential(**fields) -> dict:
    return {
        "agent": "own",
        "kind": "api_key",
        "provider": "openai",
        "external_id": "key-triage-1",
        "created_at": "2026-11-01T00:00:00Z",
        **fields,
    }


CREDENTIAL_SECRETS = [
    (credential(external_id=OPENAI), "external_id", OPENAI),
    (credential(external_id=JWT), "external_id", JWT),
    (credential(external_id=GITHUB), "external_id", GITHUB),
    (credential(label=f"triage {GITHUB}"), "label", GITHUB),
    (credential(label="Bearer abcdef1234567890"), "label", "abcdef1234567890"),
    (credential(fingerprint=OPENAI), "fingerprint", OPENAI),
    (credential(fingerprint="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), "fingerprint", "wJalrXUtnFEMI"),
    (credential(external_id=f"{AWS_KEY_ID}:{AWS_SECRET}"), "external_id", AWS_SECRET),
    (credential(external_id=f"{AWS_KEY_ID}{AWS_SECRET}"), "external_id", AWS_SECRET),
    (credential(external_id=f"{AWS_SECRET},"), "external_id", AWS_SECRET),
    (credential(external_id=f"{AWS_KEY_ID} {AWS_SECRET}"), "external_id", AWS_SECRET),
    (credential(label=f"deploy key {AWS_SECRET}."), "label", AWS_SECRET),
]


@pytest.mark.parametrize(("body", "field", "secret"), CREDENTIAL_SECRETS, ids=range(len(CREDENTIAL_SECRETS)))
def test_posting_a_credential_with_a_literal_secret_is_refused(client, agent, body, field, secret):
    before = counts()
    assert_refused(client.post(CREDENTIALS, body, format="json"), field, secret, before)


def test_a_credential_fingerprint_must_be_sha256_hex(client, agent):
    before = counts()
    response = client.post(CREDENTIALS, credential(fingerprint="sha256:ab12"), format="json")
    assert response.status_code == 400 and "sha256:<hex>" in str(response.data["fingerprint"][0])
    assert counts() == before


def test_a_credential_with_a_key_id_and_a_fingerprint_is_accepted(client, agent):
    body = credential(
        provider="aws",
        kind="access_key",
        external_id="AKIAIOSFODNN7EXAMPLE",
        fingerprint="sha256:" + "ab" * 32,
        label="Deploy key (${AWS_PROFILE})",
    )
    response = client.post(CREDENTIALS, body, format="json")
    assert response.status_code == 201, response.data
    assert Credential.objects.get().external_id == "AKIAIOSFODNN7EXAMPLE"
    assert AuditEvent.objects.filter(verb="credential.record").count() == 1


def test_rotating_with_a_secret_as_fingerprint_is_refused(client, agent):
    cred = CredentialFactory(agent=agent)
    before = counts()
    response = client.post(f"{CREDENTIALS}{cred.pk}/rotate/", {"fingerprint": OPENAI}, format="json")
    assert_refused(response, "fingerprint", OPENAI, before)


def test_no_refused_secret_reaches_any_table(client, agent):
    for body, _, _ in TOOL_SECRETS:
        client.post(TOOLS, body, format="json")
    for body, _, _ in CREDENTIAL_SECRETS:
        client.post(CREDENTIALS, body, format="json")
    stored = json.dumps([list(m.objects.values()) for m in (Tool, Credential, AuditEvent)], default=str)
    for _, _, secret in TOOL_SECRETS + CREDENTIAL_SECRETS:
        assert secret not in stored
