"""Recognising literal secrets: what is one, what is not, keyed fingerprints, redaction."""

import hashlib
import re

import pytest
from django.test import override_settings

from inventory.secrets import (
    SecretScanner,
    args_refusal,
    credential_fingerprint_refusal,
    env_keys_refusal,
    fingerprint,
    is_secret_name,
    text_refusal,
    url_refusal,
)

GITHUB = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"

# value → the kind of secret the refusal names
SECRET_TEXTS = {
    GITHUB: "a GitHub token",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstu": "a GitHub token",
    "sk-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL": "an API key",
    "sk-proj-abc123def456ghi789jkl012": "an API key",
    "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv0123456789": "an API key",
    "xoxb-1234567890-1234567890-abcdefghijABCDEFGHIJ": "a Slack token",
    "xoxp-1234567890-abcdefgh": "a Slack token",
    "xoxa-2-1234567890-abcdefgh": "a Slack token",
    "glpat-abcdefghij0123456789": "a GitLab token",
    "sk_live_abcdefghijklmnop1234": "a Stripe key",
    "AIzaSyA1234567890abcdefghijklmnopqrstuv": "a Google API key",
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----": "a private key",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE": "a private key",
    "-----BEGIN EC PRIVATE KEY-----": "a private key",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U": "a JSON Web Token",
    "Bearer abcdef1234567890": "a bearer token",
    "Authorization: Bearer Zm9vYmFyYmF6cXV4": "a bearer token",
    "https://bot:hunter2@db.example.com/finance": "a password in the URL",
    "https://api.example.com/mcp?api_key=abc123def456": "the api_key parameter of the URL",
    "run --password=opensesame": "the value of password",
    "GITHUB_TOKEN=s3cr3t-value npx server": "the value of GITHUB_TOKEN",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY": "an AWS secret access key",
    f"prefix {GITHUB} suffix": "a GitHub token",
}

NOT_SECRETS = [
    "${GITHUB_TOKEN}",
    "${TOKEN:-}",
    "${input:github-token}",
    "Bearer ${API_TOKEN}",
    "Bearer token for CI",
    "https://api.example.com/mcp?token=${TOKEN}&region=eu",
    "https://user:${DB_PASSWORD}@db.example.com/x",
    "postgresql://reporting@db.internal.example:5432/finance",
    "${PAYMENTS_MCP_URL:-https://payments.internal.example/mcp}",
    "AKIAIOSFODNN7EXAMPLE",  # an AWS access key id identifies a key
    "ASIAIOSFODNN7EXAMPLE",
    "arn:aws:iam::123456789012:user/svc-invoice-agent#access_key_1",
    "arn:aws:iam::123456789012:user/sk-build-agent-2024-prod#access_key_1",
    "sk-deploymentcoordinator",
    "task-abcdefghijklmnop1234",
    "OpenAI key for triage",
    "password rotation: monthly",
    "key-triage-1",
    "REDACTED",
    "--token=REDACTED",
    "<your-token>",
    "da39a3ee5e6b4b0d3255bfef95601890afd80709",  # a SHA-1 is lower-case hex, not a key
    "",
]


@pytest.mark.parametrize(("value", "kind"), list(SECRET_TEXTS.items()), ids=range(len(SECRET_TEXTS)))
def test_secrets_are_refused_by_what_they_look_like_without_echo(value, kind):
    message = text_refusal(value)
    assert message is not None
    assert message.startswith(f"This looks like a secret ({kind}). Store a reference such as ${{")
    assert message.endswith("}, never the value.")
    for word in re.findall(r"[A-Za-z0-9_+/-]{6,}", value):
        if word not in ("Bearer", "Authorization", "password", "GITHUB_TOKEN", "PRIVATE", "server", "prefix",
                        "suffix", "api_key", "example", "finance", "BEGIN", "OPENSSH"):
            assert word not in message, word


@pytest.mark.parametrize("value", NOT_SECRETS)
def test_references_identifiers_and_placeholders_are_not_secrets(value):
    assert text_refusal(value) is None


def test_the_refusal_suggests_a_reference_named_after_the_secret():
    assert "${GITHUB_TOKEN}" in text_refusal(GITHUB)
    assert "${API_KEY}" in args_refusal(["--api-key", "abcd1234"])
    assert "${DB_PASSWORD}" in text_refusal("DB_PASSWORD=hunter22")


@pytest.mark.parametrize(("name", "secret"), [
    ("GITHUB_TOKEN", True), ("--api-key", True), ("Authorization", True), ("PGPASSWORD", True),
    ("clientSecret", True), ("X-Api-Key", True),
    ("AWS_ACCESS_KEY_ID", False), ("SSH_KEY_PATH", False), ("MAX_TOKENS", True), ("TOKEN_URL", False),
    ("LOG_LEVEL", False), ("--read-only", False),
])
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


def test_urls():
    assert "password in the URL" in url_refusal("https://u:pw0rd123@db.lan/x")
    assert "a GitHub token" in url_refusal(f"https://{GITHUB}@github.com/acme/repo.git")
    assert "access_token parameter" in url_refusal("https://x.example/mcp?access_token=abcd1234efgh")
    assert url_refusal("https://x.example/mcp?token=REDACTED") is None
    assert url_refusal("") is None


def test_args():
    assert "a GitHub token" in args_refusal(["--token", GITHUB])
    assert "the value of --token" in args_refusal(["--token", "s3cr3t-value"])
    assert "the value of --password" in args_refusal(["--password=opensesame"])
    assert "the value of API_KEY" in args_refusal(["API_KEY=abcd1234"])
    assert args_refusal(["--token", "${GITHUB_TOKEN}", "--read-only", "-y", "/srv/reports"]) is None
    assert args_refusal("--token x") == "Give the arguments as a list of strings."


def test_env_keys_are_names_only():
    assert env_keys_refusal(["GITHUB_TOKEN", "_PRIVATE", "PATH2"]) is None
    assert "a GitHub token" in env_keys_refusal([f"GITHUB_TOKEN={GITHUB}"])
    for bad in (["GITHUB_TOKEN=x"], ["2FA"], ["MY-VAR"], [""], [3]):
        assert env_keys_refusal(bad).startswith("Give environment variable names only"), bad
    assert env_keys_refusal("GITHUB_TOKEN") == "Give the environment variables' names as a list."


def test_credential_fingerprints_are_sha256_of_a_public_part():
    assert credential_fingerprint_refusal("") is None
    assert credential_fingerprint_refusal("sha256:" + "aB" * 32) is None
    for bad in ("sha256:ab12", "sha256:" + "g" * 64, "md5:" + "a" * 32, "AKIASECRETVALUE"):
        assert credential_fingerprint_refusal(bad).startswith("Give a fingerprint as sha256:<hex>, never the secret.")
    assert "an AWS secret access key" in credential_fingerprint_refusal("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert "an API key" in credential_fingerprint_refusal("sk-proj-abc123def456ghi789jkl012")


def test_fingerprint_is_a_keyed_hmac_not_a_plain_hash():
    value = "hunter2"
    fp = fingerprint(value)
    assert re.fullmatch(r"hmac-sha256:[0-9a-f]{16}", fp)
    assert fp == fingerprint(value) and fp != fingerprint("hunter3")
    assert hashlib.sha256(value.encode()).hexdigest()[:16] not in fp
    with override_settings(SECRET_KEY="another-server-key-" + "x" * 40):
        assert fingerprint(value) != fp  # rotating SECRET_KEY changes fingerprints


def test_scanner_redacts_and_reports_each_secret_with_its_location():
    scanner = SecretScanner()
    url = scanner.url("url", "https://bot:hunter2hunter2@mcp.example.com/mcp?api_key=abc123def456&sig=${SIG}")
    args = scanner.args(["--token", "s3cr3t-value", "--url", "postgres://u:pw0rd123@db.lan/x", "-y"])
    command = scanner.text("command", "env GITHUB_TOKEN=abcdef123456 npx")
    scanner.value("headers.Authorization", "Authorization", "Bearer abcdef1234567890")

    assert url == "https://bot:REDACTED@mcp.example.com/mcp?api_key=REDACTED&sig=${SIG}"
    assert args == ["--token", "REDACTED", "--url", "postgres://u:REDACTED@db.lan/x", "-y"]
    assert command == "env GITHUB_TOKEN=REDACTED npx"
    assert [h.location for h in scanner.hits] == [
        "url.password", "url.query.api_key", "args[1]", "args[3].password", "command", "headers.Authorization",
    ]
    assert all(h.fingerprint.startswith("hmac-sha256:") for h in scanner.hits)
    assert scanner.hits[0].fingerprint == fingerprint("hunter2hunter2")
