"""Recognising literal secrets: what is one, what is not, keyed fingerprints, redaction."""

import hashlib
import re

import pytest
from django.test import override_settings

from inventory import secrets
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
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

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
    # an AWS secret access key with anything next to it
    f"{AWS_KEY_ID}:{AWS_SECRET}": "an AWS secret access key",
    f"{AWS_KEY_ID}{AWS_SECRET}": "an AWS secret access key",
    f"{AWS_KEY_ID}/{AWS_SECRET}": "an AWS secret access key",
    f"{AWS_KEY_ID} {AWS_SECRET}": "an AWS secret access key",
    f"{AWS_SECRET},": "an AWS secret access key",
    f" {AWS_SECRET}": "an AWS secret access key",
    f"deploy key {AWS_SECRET}.": "an AWS secret access key",
    f"aws_secret={AWS_SECRET};region=eu-west-1": "an AWS secret access key",
    f'{{"secret": "{AWS_SECRET}"}}': "an AWS secret access key",
    f"bot@{AWS_SECRET}": "an AWS secret access key",
    f"({AWS_SECRET})": "an AWS secret access key",
    f"key: {GITHUB},": "a GitHub token",
    "--token=s3cr3t-value": "the value of token",
    "PASSWORD=hunter2hunter2": "the value of PASSWORD",
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
    "arn:aws:iam::123456789012:user/x#access_key_1",
    f"{AWS_KEY_ID}:${{AWS_SECRET_ACCESS_KEY}}",
    "${AWS_ACCESS_KEY_ID}:${AWS_SECRET_ACCESS_KEY}",
    "${CREDS:-${AWS_SECRET_ACCESS_KEY}}",
    "sk-build-agent-2024",
    "/Users/alice/Projects/Warrant2/src/appx",  # a path of 40 characters
    "reports at /Users/alice/Projects/Warrant2/src/appx, daily",
    "https://github.com/acme/AbcdefghijklmnopqrstuvwxyZ0123456789",  # a URL without credentials
    "https://docs.example.com/d/AbcdefghijklmnopqrstuvwxyZ0123456789ab/edit",
    "AbcdefghijklmnopqrstuvwxyZ0123456789abc-x",  # 41 characters, not a key
]


@pytest.mark.parametrize(("value", "kind"), list(SECRET_TEXTS.items()), ids=range(len(SECRET_TEXTS)))
def test_secrets_are_refused_by_what_they_look_like_without_echo(value, kind):
    message = text_refusal(value)
    assert message is not None
    assert message.startswith(f"This looks like a secret ({kind}). Store a reference such as ${{")
    assert message.endswith("}, never the value.")
    for word in re.findall(r"[A-Za-z0-9_+/-]{6,}", value):
        if word not in (
            "Bearer",
            "Authorization",
            "password",
            "GITHUB_TOKEN",
            "PRIVATE",
            "server",
            "prefix",
            "suffix",
            "api_key",
            "example",
            "finance",
            "BEGIN",
            "OPENSSH",
            "secret",
            "PASSWORD",
        ):
            assert word not in message, word


@pytest.mark.parametrize("value", NOT_SECRETS)
def test_references_identifiers_and_placeholders_are_not_secrets(value):
    assert text_refusal(value) is None


def test_the_refusal_suggests_a_reference_named_after_the_secret():
    assert "${GITHUB_TOKEN}" in text_refusal(GITHUB)
    assert "${API_KEY}" in args_refusal(["--api-key", "abcd1234"])
    assert "${DB_PASSWORD}" in text_refusal("DB_PASSWORD=hunter22")


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("GITHUB_TOKEN", True),
        ("--api-key", True),
        ("Authorization", True),
        ("PGPASSWORD", True),
        ("clientSecret", True),
        ("X-Api-Key", True),
        ("AWS_ACCESS_KEY_ID", False),
        ("SSH_KEY_PATH", False),
        ("MAX_TOKENS", True),
        ("TOKEN_URL", False),
        ("LOG_LEVEL", False),
        ("--read-only", False),
    ],
)
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


@pytest.mark.parametrize(
    "args",
    [
        ["--creds", f"{AWS_KEY_ID}:{AWS_SECRET}"],
        ["--creds", f"{AWS_SECRET},"],
        ["--creds", f" {AWS_SECRET}"],
        [f"--aws={AWS_KEY_ID}:{AWS_SECRET}"],
        [f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}"],
        ["--env", f"AWS_ACCESS_KEY_ID={AWS_KEY_ID},AWS_SECRET_ACCESS_KEY={AWS_SECRET}"],
    ],
)
def test_an_aws_secret_access_key_next_to_anything_in_args_is_refused(args):
    message = args_refusal(args)
    assert message is not None and "${AWS_SECRET_ACCESS_KEY}" in message
    assert AWS_SECRET not in message and AWS_KEY_ID not in message


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (["--token=" + GITHUB], "a GitHub token"),
        (["--token=s3cr3t-value"], "the value of --token"),
        (["PASSWORD=hunter2hunter2"], "the value of PASSWORD"),
        (["-e", "PASSWORD=hunter2hunter2"], "the value of PASSWORD"),
        (["--opts", "user=bot,PASSWORD=hunter2hunter2"], "the value of PASSWORD"),
    ],
)
def test_key_value_pairs_in_args_are_refused(args, kind):
    message = args_refusal(args)
    assert message is not None and f"({kind})" in message
    assert "hunter2hunter2" not in message and "s3cr3t-value" not in message


def test_the_access_key_id_is_kept_and_only_the_secret_is_redacted_and_fingerprinted():
    scanner = SecretScanner()
    args = scanner.args(["--creds", f"{AWS_KEY_ID}:{AWS_SECRET}", f"{AWS_KEY_ID}{AWS_SECRET}", f"x {AWS_SECRET}, y"])
    assert args == ["--creds", f"{AWS_KEY_ID}:REDACTED", f"{AWS_KEY_ID}REDACTED", "x REDACTED, y"]
    assert [(h.location, h.kind) for h in scanner.hits] == [
        ("args[1]", "an AWS secret access key"),
        ("args[2]", "an AWS secret access key"),
        ("args[3]", "an AWS secret access key"),
    ]
    assert {h.fingerprint for h in scanner.hits} == {fingerprint(AWS_SECRET)}
    assert args_refusal(args) is None  # what is stored after redaction passes validation


# values built to make a backtracking pattern go quadratic or worse on 100 KB
ADVERSARIAL = {
    "references": "${" * 50_000,
    "assignments": "a=" * 50_000,
    "quoted assignments": 'x="' * 33_334,
    "separators": "a:" * 50_000,
    "one long part": "A1a/" * 25_000,
    "near keys": (AWS_SECRET[:-1] + "-") * 2_500,
    "key ids": AWS_KEY_ID * 5_000,
    "bearer": "Bearer" + " " * 100_000,
    "api keys": "sk-" * 33_334 + "!",
    "schemes": "a://" * 25_000,
    "private key": "-----BEGIN " + "PRIVATE " * 12_500,
    "key ends": "-----BEGIN PRIVATE KEY-----" + "-----END " * 11_200,
    "web tokens": "eyJaaaaa." * 11_112,
}


def test_the_scanner_patterns_cannot_backtrack():
    """Runs of characters are read possessively; references stop at the next ``$``/``{``."""
    assert secrets._PART.pattern.endswith("]++")
    assert "*+" in secrets._REFERENCE.pattern and "[^{}$]" in secrets._REFERENCE.pattern
    assert secrets._AWS_SECRET_ACCESS_KEY.pattern == "[A-Za-z0-9/+]{40}"


@pytest.mark.parametrize("value", list(ADVERSARIAL.values()), ids=list(ADVERSARIAL))
def test_a_100_kb_adversarial_value_goes_through_every_check(value):
    # Their scan time is measured by bench/secret_scanner.py, not here (no timed tests).
    assert len(value) >= 100_000
    text_refusal(value)
    text_refusal(value, name="TOKEN")
    args_refusal([value, "--token", value, f"--opt={value}"])
    url_refusal(f"https://u:{value}@h.example/?token={value}")
    env_keys_refusal([value])
    credential_fingerprint_refusal(value)


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
        "url.password",
        "url.query.api_key",
        "args[1]",
        "args[3].password",
        "command",
        "headers.Authorization",
    ]
    assert all(h.fingerprint.startswith("hmac-sha256:") for h in scanner.hits)
    assert scanner.hits[0].fingerprint == fingerprint("hunter2hunter2")
