"""An agent runtime's side of Warrant, end to end: ask, be allowed, get a task token, finish,
revoke it, and be denied outside the agent's scope.

Runs with the Python standard library alone (PyJWT, if installed, also checks the task token's
signature against Warrant's published keys, as a resource server would). Against `make run`'s
demo data:

    .venv/bin/python manage.py issue_token olivia --scopes decisions:check,tokens:issue,tokens:introspect
    WARRANT_TOKEN=wrt_… python docs/examples/agent_runtime.py

Options name the server (``--url``, default ``http://127.0.0.1:8000``), the agent's SPIFFE ID,
the tool, access, resource and intent to ask for, and the call to try outside the scope. Exits
0 when every step went as described, 1 otherwise, printing each step.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

DEMO_AGENT = "spiffe://warrant.example/ns/support/sa/ticket-triage"


class Warrant:
    """A minimal client: JSON in, JSON out, the integration token as a bearer token."""

    def __init__(self, url: str, token: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict | None = None, *, form: bool = False) -> tuple[int, dict]:
        """Send one request; returns ``(status, JSON body)`` whatever the status."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def decide(self, spiffe_id: str, tool: str, access: str, resource: str = "", intent: str = "") -> dict:
        """``POST /api/v1/decisions`` for the agent named by its SPIFFE ID."""
        status, body = self.call(
            "POST",
            "/api/v1/decisions",
            {
                "workload_identity": {"type": "spiffe", "identifier": spiffe_id},
                "tool": tool,
                "access": access,
                "resource": resource,
                "intent": intent,
            },
        )
        if status != 200:
            raise SystemExit(f"decision request refused: {status} {body}")
        return body


def step(ok: bool, text: str) -> bool:
    print(("  ok  " if ok else "  !!  ") + text)
    return ok


def verify_locally(url: str, task_token: str) -> str:
    """Check the task token's signature against the JWK Set, if PyJWT is at hand."""
    try:
        import jwt
    except ImportError:
        return "skipped (PyJWT not installed)"
    keys = jwt.PyJWKClient(url.rstrip("/") + "/.well-known/jwks.json")
    key = keys.get_signing_key_from_jwt(task_token)
    claims = jwt.decode(task_token, key.key, algorithms=["ES256"], options={"verify_aud": False})
    return f"signature verified with key {key.key_id}; scope {claims['scope']!r}"


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Ask Warrant, be allowed, get a task token, finish, revoke it, and be denied outside the scope."
    )
    parser.add_argument("--url", default=os.environ.get("WARRANT_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("WARRANT_TOKEN"), help="or WARRANT_TOKEN")
    parser.add_argument("--agent", default=DEMO_AGENT, help="the agent's SPIFFE ID")
    parser.add_argument("--tool", default="zendesk")
    parser.add_argument("--access", default="read", choices=["read", "write", "execute"])
    parser.add_argument("--resource", default="ticket/4711")
    parser.add_argument("--intent", default="ticket-triage")
    parser.add_argument("--outside-tool", default="knowledge-base", help="a call the agent has no grant for")
    parser.add_argument("--outside-access", default="write", choices=["read", "write", "execute"])
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("give an integration token with --token or WARRANT_TOKEN")
    warrant = Warrant(args.url, args.token)
    try:
        warrant.call("GET", "/api/v1/jwks")
    except OSError as error:
        print(f"Cannot reach Warrant at {args.url}: {error}. Is it running? Give --url or WARRANT_URL.")
        return 1
    good = True

    print(f"1. May {args.agent} call {args.tool}:{args.access} on {args.resource!r}?")
    allowed = warrant.decide(args.agent, args.tool, args.access, args.resource, args.intent)
    good &= step(allowed["decision"] == "allow", f"{allowed['decision']} — grant {allowed['grant']}, "
                 f"authority ends {allowed['authority_ends_at']}")  # fmt: skip
    if allowed["decision"] != "allow":
        print("     reasons:", ", ".join(r["code"] for r in allowed["reasons"]))
        return 1

    task_id = f"task-{uuid.uuid4().hex[:12]}"
    print(f"2. A task token for grant {allowed['grant']}, task {task_id}")
    status, issued = warrant.call("POST", f"/api/v1/grants/{allowed['grant']}/tokens", {"task_id": task_id})
    good &= step(status == 201, f"{status}: expires {issued.get('expires_at')} (in {issued.get('expires_in')} s)")
    if status != 201:
        print("    ", issued)
        return 1
    task_token = issued["token"]
    print("   The tool's side checks it (RFC 7662 introspection) before doing the work:")
    _, seen = warrant.call("POST", "/api/v1/introspect", {"token": task_token}, form=True)
    good &= step(seen.get("active") is True, f"active={seen.get('active')} scope={seen.get('scope')!r}")
    print("   …and may check its signature itself:", verify_locally(args.url, task_token))

    print("3. The task is done: revoke its token")
    status, revoked = warrant.call("POST", "/api/v1/tokens/revoke", {"token": task_token})
    good &= step(status == 200 and revoked.get("revoked") is True, f"{status} {revoked}")
    _, seen = warrant.call("POST", "/api/v1/introspect", {"token": task_token}, form=True)
    good &= step(seen == {"active": False}, f"introspection now says {seen}")

    print(f"4. Outside its scope: {args.outside_tool}:{args.outside_access}")
    denied = warrant.decide(args.agent, args.outside_tool, args.outside_access, "", args.intent)
    codes = [r["code"] for r in denied["reasons"]]
    good &= step(denied["decision"] == "deny", f"{denied['decision']} — {', '.join(codes)}")
    print("done" if good else "something did not go as described")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(run())
