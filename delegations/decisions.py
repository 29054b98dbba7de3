"""The runtime decision: may this agent, now, call this tool with this access, on this resource?

Agent runtimes and MCP gateways ask before each tool call (``POST /api/v1/decisions``); the
UI's "test a decision" form, the task-token issuer and token introspection ask the same
functions here, so there is one answer everywhere:

- ``decide(request, now=…)`` answers a ``DecisionRequest``: ``allow`` only if the agent is
  active, its attestation is not overdue past grace (high and critical tiers), the tool is in its
  inventory and reaches no data class the agent is not cleared for, and a grant covers the scope
  (same tool, same access level, the resource under the scope's pattern, the intent among the
  grant's intents when it names any, the person acted for when it names one, the claimed chain
  when one is claimed) and authorises at ``now``: DESIGN.md invariant 1 — ``starts_at <= now <
  expires_at``, status active, every grant up its chain likewise with its agent active. A deny
  carries machine-readable reason codes (``REASONS``), most telling first.
- ``grant_authority(grant_id, now=…)`` answers "does this grant (with its chain and agent)
  authorise at ``now``, and until when?" for the token issuer and introspection.

Cost: one SQL statement per decision whatever the number of grants (the agent with its tool and the
policy, and with them the grants in force and the latest others, each part by an index), a second
only when a candidate was handed on along a chain (the chain, recursively), plus one insert when it
is logged (every deny, a sample of allows: ``decision_log_write``). The window rule mirrors
``DelegationGrant.objects.active_at``; ``tests/delegations/test_decisions.py`` checks the two
agree on every state.

Standards: OWASP NHI Top 10 (2025) NHI5 (overprivileged NHI: least privilege at call time),
NHI7 (long-lived secrets: task tokens instead); OWASP Top 10 for Agentic Applications (2026)
ASI03 (identity and privilege abuse).
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from governance.models import MAX_DELEGATION_DEPTH, Policy
from governance.roles import can_read_all
from inventory.models import Agent, Tool, WorkloadIdentity
from inventory.permissions import can_view_agent

from .models import DecisionLog, DelegationGrant, GrantScope, resource_matches, resource_problem

ALLOW = "allow"
DENY = "deny"

#: Reason code → what it means. Agent-level codes stop the decision before any grant is read.
REASONS: dict[str, str] = {
    "identity_unknown": "No agent you may see has this workload identity.",
    "identity_token_invalid": "The identity token could not be verified.",
    "agent_not_active": "The agent is not active.",
    "attestation_overdue": "The agent's attestation is overdue past the grace period (high and critical tiers).",
    "tool_unknown": "The tool is not in the agent's inventory.",
    "data_class_not_cleared": "The tool reaches a data class the agent is not cleared for.",
    "no_grant": "No grant names this tool for the agent.",
    "access_not_granted": "The agent's grants for this tool give another access level.",
    "resource_outside_pattern": "The resource is outside the grant's resource pattern.",
    "intent_not_allowed": "The grant serves other intents.",
    "on_behalf_mismatch": "The grant acts for another person.",
    "grant_chain_mismatch": "No grant matches the grant chain claimed.",
    "grant_not_started": "The grant has not started yet.",
    "grant_expired": "The grant has expired.",
    "grant_revoked": "The grant was revoked.",
    "grant_not_approved": "The grant is not approved.",
    "parent_grant_revoked": "A grant up the delegation chain was revoked.",
    "parent_grant_expired": "A grant up the delegation chain has expired.",
    "parent_grant_inactive": "A grant up the delegation chain is not in force (not started, not approved, "
    "or its agent is not active).",
}

#: Denials that mean the agent asked beyond what it was given (as opposed to authority that lapsed):
#: repeated, they raise an ``out_of_scope_actions`` finding.
OUT_OF_SCOPE = frozenset(
    {
        "tool_unknown",
        "data_class_not_cleared",
        "no_grant",
        "access_not_granted",
        "resource_outside_pattern",
        "intent_not_allowed",
        "on_behalf_mismatch",
    }
)

_SCOPE_CODES = ("access_not_granted", "resource_outside_pattern", "intent_not_allowed", "on_behalf_mismatch")
_ORDER = {code: i for i, code in enumerate(REASONS)}


@dataclass(frozen=True)
class Subject:
    """A workload identity as presented: ``type`` (``inventory.WorkloadIdentity.Type`` value),
    ``identifier`` (SPIFFE ID, OIDC subject, role ARN …) and, for OIDC, the ``issuer`` URL."""

    type: str
    identifier: str
    issuer: str = ""

    def __str__(self):
        if self.identifier.startswith(f"{self.type}://"):  # a SPIFFE ID names its own type
            return self.identifier
        return f"{self.type}:{self.issuer + ' ' if self.issuer else ''}{self.identifier}"


@dataclass(frozen=True)
class DecisionRequest:
    """What an agent asks before a tool call.

    The agent is named by ``subject`` (its workload identity, as presented or as verified from an
    identity token) or, for the UI's test form, by ``agent_id``. ``access`` is ``read``, ``write``
    or ``execute``; ``resource`` the exact resource name (empty: none); ``intent`` the purpose of
    the call; ``on_behalf_of`` the username of the person the agent acts for (empty: none);
    ``grant_chain`` the grant ids the agent claims to act under, its own grant first, then its
    parent's, up to the root (empty: any).
    """

    tool: str
    access: str
    subject: Subject | None = None
    agent_id: int | None = None
    resource: str = ""
    intent: str = ""
    on_behalf_of: str = ""
    grant_chain: tuple[int, ...] = ()

    def presented(self) -> str:
        """The agent as presented, for the decision log."""
        return str(self.subject) if self.subject is not None else f"agent #{self.agent_id}"


@dataclass(frozen=True)
class Reason:
    """One reason code (a key of ``REASONS``) with a message for people and, for a grant-level
    reason, the id of the grant it comes from."""

    code: str
    message: str
    grant: int | None = None

    def as_dict(self) -> dict:
        data = {"code": self.code, "message": self.message}
        if self.grant is not None:
            data["grant"] = self.grant
        return data


@dataclass(frozen=True)
class Decision:
    """The answer: ``allowed``; ``reasons`` (empty when allowed); the agent; the grant used and its
    chain (own grant first); ``authority_ends_at`` — when the grant or a grant up its chain ends,
    whichever is first (UTC); ``decided_at`` (UTC)."""

    allowed: bool
    reasons: tuple[Reason, ...]
    decided_at: datetime
    agent_id: int | None = None
    agent_slug: str = ""
    grant_id: int | None = None
    grant_chain: tuple[int, ...] = ()
    authority_ends_at: datetime | None = None
    allow_sample_percent: int = 100

    @property
    def outcome(self) -> str:
        return ALLOW if self.allowed else DENY

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]

    @property
    def out_of_scope(self) -> bool:
        """True for a denial that says the agent asked beyond its grants (``OUT_OF_SCOPE``)."""
        return not self.allowed and any(code in OUT_OF_SCOPE for code in self.codes)


@dataclass(frozen=True)
class Authority:
    """Whether one grant authorises at an instant (``grant_authority``): ``ok``; ``reasons`` when
    not; the grant's agent and chain (own grant first); ``ends_at`` — the first end up the chain."""

    ok: bool
    grant_id: int
    agent_id: int | None
    chain: tuple[int, ...] = ()
    ends_at: datetime | None = None
    reasons: tuple[Reason, ...] = field(default_factory=tuple)


def reason(code: str, detail: str = "") -> Reason:
    """A ``Reason`` for ``code`` (a key of ``REASONS``), its message followed by ``detail`` if any."""
    return Reason(code, f"{REASONS[code]} {detail}".strip())


# --- reading ------------------------------------------------------------------------------------


def _json(value):
    return json.loads(value) if isinstance(value, str) else (value or [])


def _aware(value):
    if value is None or isinstance(value, datetime) and value.tzinfo is not None:
        return value
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _day(value) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _policy_default(name: str):
    return Policy._meta.get_field(name).default


_AGENT_COLUMNS = (
    "a.id AS agent_id, a.slug, a.state, a.risk_tier, a.data_classes, a.next_attestation_due, a.owner_id, "
    "a.backup_owner_id, t.id AS tool_id, t.data_classes AS tool_classes, "
    "p.attestation_grace_days, p.decision_allow_sample_percent"
)
_DECISION_SQL: dict[str, str] = {}


def _decision_sql(by: str) -> str:
    """The decision's one statement: the agent (by identity or by id) with its tool of the requested
    name and the two policy settings a decision reads, and with it — one row each — the agent's grant
    scopes of that tool (``_candidates_sql``); a single row of NULL grant columns when there are none.
    Parameters: tool, then the identity's type, issuer and identifier (or the agent id), then now, now,
    tool, tool."""
    if by not in _DECISION_SQL:
        agents, tools, identities = Agent._meta.db_table, Tool._meta.db_table, WorkloadIdentity._meta.db_table
        join = f"JOIN {identities} wi ON wi.agent_id = a.id" if by == "subject" else ""
        where = "wi.type = %s AND wi.issuer = %s AND wi.identifier = %s" if by == "subject" else "a.id = %s"
        agent = (
            f"SELECT {_AGENT_COLUMNS} FROM {agents} a {join} "
            f"LEFT JOIN {tools} t ON t.agent_id = a.id AND t.name = %s "
            f"LEFT JOIN {Policy._meta.db_table} p ON p.id = 1 WHERE {where}"
        )
        candidates = _candidates_sql("(SELECT agent_id FROM agent)")
        _DECISION_SQL[by] = (
            f"WITH agent AS ({agent}) SELECT agent.*, c.* FROM agent LEFT JOIN ({candidates}) c ON 1 = 1"
        )
    return _DECISION_SQL[by]


#: Rows of grants in force now read per decision (every grant of the agent that names the tool and
#: authorises by its own window; far more than any agent holds), and rows of its latest other grants
#: read to explain a denial (expired, revoked, not started). Each part is served by an index, so a long
#: history of lapsed grants never grows the work, nor hides a grant that allows.
IN_FORCE_LIMIT = 256
LAPSED_LIMIT = 8
#: Uses of a statement on a connection after which psycopg prepares it (``_cursor``).
PREPARE_AFTER = 3


def _candidates_sql(agent: str) -> str:
    """The second query: the agent's grant scopes of the tool — those whose grant is in force now (by
    ``grant_agent_status_idx``), then the latest others (by ``grant_agent_expires_idx``) for the
    reasons; a grant may appear in both. ``agent`` is the SQL that gives the agent's id. Parameters:
    now, now, tool, tool."""
    S = DelegationGrant.Status
    grants, scopes = DelegationGrant._meta.db_table, GrantScope._meta.db_table
    user = get_user_model()
    # Empty intents come back NULL: nothing to parse for the grants that name none (most).
    columns = (
        "g.id AS grant_id, g.parent_id, g.status, g.starts_at, g.expires_at, NULLIF(g.intents, {empty}), "
        "g.on_behalf_of_id, s.id AS scope_id, s.access, s.resource_pattern"
    ).format(empty="'[]'::jsonb" if connection.vendor == "postgresql" else "'[]'")
    base = f"FROM {grants} g JOIN {scopes} s ON s.grant_id = g.id"
    in_force = (
        f"SELECT TRUE AS in_force, {columns} {base} WHERE g.agent_id = {agent} AND g.status = '{S.ACTIVE}' "
        f"AND g.starts_at <= %s AND g.expires_at > %s AND s.tool_name = %s LIMIT {IN_FORCE_LIMIT}"
    )
    statuses = ", ".join(f"'{x}'" for x in (S.ACTIVE, S.EXPIRED, S.REVOKED))
    # Ordered by the index's own order only, so that the scan stops after LAPSED_LIMIT rows.
    latest = (
        f"SELECT FALSE AS in_force, {columns} {base} "
        f"WHERE g.agent_id = {agent} AND s.tool_name = %s AND g.status IN ({statuses}) "
        f"ORDER BY g.expires_at DESC LIMIT {LAPSED_LIMIT}"
    )
    return (
        f"SELECT c.*, u.{user.USERNAME_FIELD} FROM (SELECT * FROM ({in_force}) AS in_force "
        f"UNION ALL SELECT * FROM ({latest}) AS latest) AS c "
        f"LEFT JOIN {user._meta.db_table} u ON u.id = c.on_behalf_of_id"
    )


def _chain_sql(count: int) -> str:
    """The grants from ``count`` starting ids up their chains (a recursive query, at most
    ``MAX_DELEGATION_DEPTH`` levels): id, parent id, status, starts_at, expires_at, agent id, agent state."""
    grants, agents = DelegationGrant._meta.db_table, Agent._meta.db_table
    ids = ", ".join(["%s"] * count)
    return f"""
        WITH RECURSIVE chain(id, parent_id, status, starts_at, expires_at, agent_id, depth) AS (
            SELECT id, parent_id, status, starts_at, expires_at, agent_id, 1 FROM {grants} WHERE id IN ({ids})
            UNION ALL
            SELECT g.id, g.parent_id, g.status, g.starts_at, g.expires_at, g.agent_id, c.depth + 1
            FROM {grants} g JOIN chain c ON g.id = c.parent_id WHERE c.depth < {MAX_DELEGATION_DEPTH}
        )
        SELECT c.id, c.parent_id, c.status, c.starts_at, c.expires_at, c.agent_id, a.state
        FROM chain c JOIN {agents} a ON a.id = c.agent_id
    """


def _cursor():
    """A cursor for the decision's queries. On PostgreSQL it binds parameters on the server, so that
    psycopg prepares each statement after ``PREPARE_AFTER`` uses on a connection and PostgreSQL skips
    planning from then on (planning costs more than running these queries); the rest of the
    application keeps Django's client-side binding. ``settings.WARRANT_DB_PREPARE`` turns it off (for a
    transaction-pooling proxy). Queries are logged and errors wrapped as with ``connection.cursor()``."""
    if connection.vendor != "postgresql" or not settings.WARRANT_DB_PREPARE:
        return connection.cursor()
    import psycopg
    from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        raw.prepare_threshold = PREPARE_AFTER  # only server-binding cursors ever prepare
    wrapper = CursorDebugWrapper if connection.queries_logged else CursorWrapper
    return wrapper(psycopg.Cursor(raw), connection)


def _grants_up(ids) -> dict[int, tuple]:
    """``id → (parent id, status, starts_at, expires_at, agent id, agent state)`` for the grants ``ids``
    and every grant up their chains; one query (none for no ids)."""
    ids = sorted(set(ids))
    if not ids:
        return {}
    with _cursor() as cursor:
        cursor.execute(_chain_sql(len(ids)), ids)
        rows = cursor.fetchall()
    return {row[0]: (row[1], row[2], _aware(row[3]), _aware(row[4]), row[5], row[6]) for row in rows}


# --- the rule -----------------------------------------------------------------------------------


def _own_window(status: str, starts_at: datetime, expires_at: datetime, now: datetime) -> str | None:
    """The reason code a grant's own status and window give at ``now``, or None if it authorises."""
    S = DelegationGrant.Status
    if status == S.REVOKED:
        return "grant_revoked"
    if status == S.EXPIRED or (status == S.ACTIVE and expires_at <= now):
        return "grant_expired"
    if status != S.ACTIVE:
        return "grant_not_approved"
    if starts_at > now:
        return "grant_not_started"
    return None


def _ancestor_window(status, starts_at, expires_at, agent_state, now) -> str | None:
    """The reason code a grant up the chain gives at ``now``, or None if it authorises."""
    S = DelegationGrant.Status
    if status == S.REVOKED:
        return "parent_grant_revoked"
    if status == S.EXPIRED or (status == S.ACTIVE and expires_at <= now):
        return "parent_grant_expired"
    if status != S.ACTIVE or starts_at > now or agent_state != Agent.State.ACTIVE:
        return "parent_grant_inactive"
    return None


def _ancestors(parent_id: int | None, grants: dict[int, tuple], now: datetime):
    """Walk up from ``parent_id`` through ``grants`` (``_grants_up``): ``(ids, first end, reason or None)``."""
    ids, ends, problem = [], None, None
    while parent_id is not None and len(ids) < MAX_DELEGATION_DEPTH:
        up = grants.get(parent_id)
        if up is None:  # not read (deeper than the bound): treat the chain as not in force
            return ids, ends, problem or "parent_grant_inactive"
        next_parent, status, starts_at, expires_at, _, agent_state = up
        ids.append(parent_id)
        ends = expires_at if ends is None else min(ends, expires_at)
        problem = problem or _ancestor_window(status, starts_at, expires_at, agent_state, now)
        parent_id = next_parent
    return ids, ends, problem


def _attestation_overdue(risk_tier: str, due: date | None, grace_days: int, now: datetime) -> bool:
    """True when a high or critical agent's attestation due date is more than ``grace_days`` behind
    today in the organisation's time zone (``WARRANT_TIME_ZONE``)."""
    if risk_tier not in (Agent.RiskTier.HIGH, Agent.RiskTier.CRITICAL) or due is None:
        return False
    today = now.astimezone(ZoneInfo(settings.WARRANT_TIME_ZONE)).date()
    return due < today - timedelta(days=grace_days)


def _may_ask(viewer, owner_id, backup_owner_id) -> bool:
    """``inventory.permissions.can_view_agent`` on the ids the first query read (no agent object)."""
    if viewer is None or can_read_all(viewer):
        return True
    return can_view_agent(viewer, Agent(owner_id=owner_id, backup_owner_id=backup_owner_id))


def decide(request: DecisionRequest, *, now: datetime, viewer=None) -> Decision:
    """Decide ``request`` at ``now`` (aware; UTC is used). ``viewer`` (a user, optional) limits the
    agents it may ask about to those it may see (``inventory.permissions.can_view_agent``); any
    other agent is ``identity_unknown``, so that a caller learns nothing of agents not its own.

    Never raises for a well-formed request: every refusal is a deny with reasons. One query (two for a
    delegated grant's chain).
    """
    now = now.astimezone(UTC)
    by = "subject" if request.subject is not None else "agent"
    at = connection.ops.adapt_datetimefield_value(now)
    if by == "subject":
        s = request.subject
        params = [request.tool, s.type, s.issuer, s.identifier]
    else:
        params = [request.tool, request.agent_id]
    with _cursor() as cursor:
        cursor.execute(_decision_sql(by), [*params, at, at, request.tool, request.tool])
        found = cursor.fetchall()
    if not found or not _may_ask(viewer, found[0][6], found[0][7]):
        return Decision(False, (reason("identity_unknown"),), now)
    agent_id, slug, state, risk_tier, agent_classes, due, _, _, tool_id, tool_classes, grace, sample = found[0][:12]
    # In force first: once one of them allows, the rest (lapsed grants, read to explain a denial)
    # cannot change the answer — unless the in-force part was cut at its limit.
    rows = sorted((row[12:] for row in found if row[12] is not None), key=lambda row: not row[0])
    in_force_complete = sum(1 for row in rows if row[0]) < IN_FORCE_LIMIT
    if grace is None:
        grace = _policy_default("attestation_grace_days")
    if sample is None:
        sample = _policy_default("decision_allow_sample_percent")

    def deny(*reasons: Reason, **kwargs) -> Decision:
        ordered = tuple(sorted(reasons, key=lambda r: _ORDER[r.code]))
        return Decision(False, ordered, now, agent_id, slug, allow_sample_percent=sample, **kwargs)

    if state != Agent.State.ACTIVE:
        return deny(reason("agent_not_active", f"It is {state}."))
    agent_level = []
    if _attestation_overdue(risk_tier, _day(due), grace, now):
        agent_level.append(reason("attestation_overdue", f"It was due {_day(due).isoformat()}."))
    if tool_id is None:
        agent_level.append(reason("tool_unknown", f"No tool named {request.tool!r}."))
    else:
        uncleared = sorted(set(_json(tool_classes)) - set(_json(agent_classes)))
        if uncleared:
            agent_level.append(reason("data_class_not_cleared", f"Not cleared for: {', '.join(uncleared)}."))
    if agent_level:
        return deny(*agent_level)

    if not rows:
        return deny(reason("no_grant", f"Nothing gives {slug} {request.tool}:{request.access}."))
    # The chains of delegated grants, in a third query only when one of them has a parent.
    chains = _grants_up(row[2] for row in rows if row[2] is not None)

    problem = resource_problem(request.resource) or ""  # checked once, not per candidate
    best_key, best, allowed, seen = None, [], [], set()
    for row in rows:
        in_force, grant_id, parent_id, status, starts_at, expires_at, intents, _, scope_id, access, pattern, obo = row
        if allowed and not in_force and in_force_complete:
            break
        if scope_id in seen:  # in force and among the latest: read twice
            continue
        seen.add(scope_id)
        starts_at, expires_at = _aware(starts_at), _aware(expires_at)
        scope = []  # (code, detail): the call is not what this grant's scope covers
        if access != request.access:
            scope.append(("access_not_granted", f"It gives {request.tool}:{access}."))
        if not resource_matches(pattern, request.resource, problem=problem):
            scope.append(("resource_outside_pattern", f"It covers {pattern!r}; asked {request.resource!r}."))
        intents = _json(intents)
        if intents and request.intent not in intents:
            asked = repr(request.intent) if request.intent else "no intent"
            scope.append(("intent_not_allowed", f"It serves {', '.join(intents)}; asked {asked}."))
        if obo and obo != request.on_behalf_of:
            asked = repr(request.on_behalf_of) if request.on_behalf_of else "nobody"
            scope.append(("on_behalf_mismatch", f"It acts for {obo}; asked for {asked}."))
        ancestors, chain_ends, chain_problem = _ancestors(parent_id, chains, now)
        chain = (grant_id, *ancestors)
        covers = f"It gives {request.tool}:{access}" + (f" on {pattern!r}." if pattern else ".")
        authority = [(c, covers) for c in (_own_window(status, starts_at, expires_at, now), chain_problem) if c]
        if request.grant_chain and chain != request.grant_chain:
            authority.append(("grant_chain_mismatch", f"Its chain is {', '.join(map(str, chain))}."))
        if not scope and not authority:
            ends = expires_at if chain_ends is None else min(expires_at, chain_ends)
            allowed.append((ends, -grant_id, grant_id, chain))
            continue
        key = (bool(scope), bool(authority), len(scope) + len(authority))
        found = [
            Reason(code, f"{REASONS[code]} Grant #{grant_id}. {detail}".strip(), grant_id)
            for code, detail in scope + authority
        ]
        if best_key is None or key < best_key:
            best_key, best = key, found
        elif key == best_key:
            best += [r for r in found if r.code not in {b.code for b in best}]
    if allowed:
        ends, _, grant_id, chain = max(allowed)
        return Decision(True, (), now, agent_id, slug, grant_id, chain, ends, sample)
    return deny(*best)


def grant_authority(grant_id: int, *, now: datetime) -> Authority:
    """Whether grant ``grant_id`` authorises at ``now`` (aware): invariant 1 with the agent-level
    checks of ``decide`` — the agent active, its attestation not overdue past grace, and every
    scope's tool in its inventory and within its data-class clearance (``tool_unknown``,
    ``data_class_not_cleared``), so that a task token never carries a scope a decision would deny.
    A handful of queries (the grant and its chain in one; the task-token issuer and introspection call it). A grant
    that does not exist is ``ok=False`` with ``grant_not_approved``."""
    now = now.astimezone(UTC)
    grants = _grants_up([grant_id])
    if grant_id not in grants:
        return Authority(False, grant_id, None, reasons=(reason("grant_not_approved", "No such grant."),))
    parent_id, status, starts_at, expires_at, agent_id, agent_state = grants[grant_id]
    ancestors, chain_ends, chain_problem = _ancestors(parent_id, grants, now)
    chain = (grant_id, *ancestors)
    ends = expires_at if chain_ends is None else min(expires_at, chain_ends)
    codes = []
    if agent_state != Agent.State.ACTIVE:
        codes.append(reason("agent_not_active", f"It is {agent_state}."))
    else:
        agent = Agent.objects.only("risk_tier", "next_attestation_due", "data_classes").get(pk=agent_id)
        policy = Policy.objects.filter(pk=1).values_list("attestation_grace_days", flat=True).first()
        grace = policy if policy is not None else _policy_default("attestation_grace_days")
        if _attestation_overdue(agent.risk_tier, agent.next_attestation_due, grace, now):
            codes.append(reason("attestation_overdue", f"It was due {agent.next_attestation_due.isoformat()}."))
        names = sorted(set(GrantScope.objects.filter(grant_id=grant_id).values_list("tool_name", flat=True)))
        tools = dict(Tool.objects.filter(agent_id=agent_id, name__in=names).values_list("name", "data_classes"))
        missing = [name for name in names if name not in tools]
        if missing:
            codes.append(reason("tool_unknown", f"Not in the agent's inventory: {', '.join(missing)}."))
        cleared = set(agent.data_classes or [])
        uncleared = {name: sorted(set(classes or []) - cleared) for name, classes in tools.items()}
        uncleared = {name: classes for name, classes in uncleared.items() if classes}
        if uncleared:
            detail = "; ".join(f"{name} reaches {', '.join(classes)}" for name, classes in sorted(uncleared.items()))
            codes.append(reason("data_class_not_cleared", f"{detail}."))
    for code in (_own_window(status, starts_at, expires_at, now), chain_problem):
        if code:
            codes.append(reason(code))
    codes.sort(key=lambda r: _ORDER[r.code])
    return Authority(not codes, grant_id, agent_id, chain, ends, tuple(codes))


# --- the decision log ---------------------------------------------------------------------------


def should_log(decision: Decision, *, sample=random.random) -> bool:
    """Every denial is logged; an allow with probability ``allow_sample_percent`` / 100."""
    if not decision.allowed:
        return True
    percent = decision.allow_sample_percent
    return percent >= 100 or (percent > 0 and sample() * 100 < percent)


_LOG_FIELDS = (
    "decided_at",
    "agent_id",
    "presented",
    "tool_name",
    "access",
    "resource",
    "intent",
    "on_behalf_of",
    "claimed_chain",
    "outcome",
    "reasons",
    "out_of_scope",
    "grant_id",
    "authority_ends_at",
    "requested_by_id",
    "requested_via",
)


@functools.cache
def _log_fields() -> tuple:
    """The model fields of ``_LOG_FIELDS``, looked up once."""
    return tuple(DecisionLog._meta.get_field(name) for name in _LOG_FIELDS)


@functools.cache
def _log_sql(asynchronous: bool) -> str:
    """The decision log's insert; ``asynchronous`` (PostgreSQL, outside a transaction) also turns
    ``synchronous_commit`` off for the statement's own transaction (``set_config(…, true)``, local to it)."""
    columns = ", ".join(field.column for field in _log_fields())
    values = ", ".join(["%s"] * len(_LOG_FIELDS))
    table = DecisionLog._meta.db_table
    if asynchronous:
        return (
            f"INSERT INTO {table} ({columns}) SELECT {values} "
            "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS asynchronous_commit"
        )
    return f"INSERT INTO {table} ({columns}) VALUES ({values})"


def decision_log_write(
    request: DecisionRequest, decision: Decision, *, requested_by=None, requested_via: str = ""
) -> bool:
    """Keep ``decision`` in the decision log if ``should_log`` says so: one insert (a statement the
    connection prepares, like the decision's own queries). Returns whether it was kept.

    On PostgreSQL, an insert that is its own transaction (autocommit, as in the decision endpoint)
    commits without waiting for the WAL flush (``synchronous_commit`` off for that transaction
    alone) unless ``settings.WARRANT_DECISION_LOG_DURABLE``: a database crash may lose the last
    fraction of a second of log rows (PostgreSQL's ``wal_writer_delay`` × 3 at most), never a row of
    another table and never a partial row. Inside a transaction the insert commits with it, as usual.

    Not an audit event: the log is high-volume and pruned (``decision_log_prune``); what a person
    must act on — repeated out-of-scope denials — becomes a finding (``decisions_flag_out_of_scope``).
    """
    if not should_log(decision):
        return False
    values = {
        "decided_at": decision.decided_at,
        "agent_id": decision.agent_id,
        "presented": request.presented()[:600],
        "tool_name": request.tool[:100],
        "access": request.access[:16],
        "resource": request.resource[:500],
        "intent": request.intent[:200],
        "on_behalf_of": request.on_behalf_of[:150],
        "claimed_chain": list(request.grant_chain),
        "outcome": decision.outcome,
        "reasons": decision.codes,
        "out_of_scope": decision.out_of_scope,
        "grant_id": decision.grant_id,
        "authority_ends_at": decision.authority_ends_at,
        "requested_by_id": requested_by.pk if getattr(requested_by, "is_authenticated", False) else None,
        "requested_via": requested_via[:200],
    }
    fields = zip(_LOG_FIELDS, _log_fields(), strict=True)
    params = [field.get_db_prep_save(values[name], connection) for name, field in fields]
    asynchronous = (
        connection.vendor == "postgresql"
        and not settings.WARRANT_DECISION_LOG_DURABLE
        and not connection.in_atomic_block
    )
    with _cursor() as cursor:
        cursor.execute(_log_sql(asynchronous), params)
    return True


# --- jobs ---------------------------------------------------------------------------------------


def decisions_flag_out_of_scope(*, now: datetime) -> dict[str, int]:
    """Raise one ``out_of_scope_actions`` finding per agent with at least
    ``Policy.decision_out_of_scope_threshold`` out-of-scope denials (``OUT_OF_SCOPE``) logged in the
    ``decision_out_of_scope_window_minutes`` before ``now`` (aware, UTC): an agent acting beyond its
    intended scope (OWASP NHI Top 10 2025 NHI5; OWASP Agentic Top 10 2026 ASI03).

    Deduplicated: an agent with an unresolved finding of that kind gets its evidence (attempts in
    the window, first and last, tools) and ``last_seen_at`` (the last attempt) brought up to date,
    never a second finding (DESIGN.md invariant 8); a rerun for the same instant changes nothing.
    Denials logged before a person resolved the agent's last such finding no longer count: only new
    attempts open a new one. The finding stays open until a person resolves it — the attempts
    happened, and quiet afterwards does not explain them. Returns ``{"opened", "refreshed"}``.
    """
    from django.contrib.contenttypes.models import ContentType
    from django.db import transaction
    from django.db.models import Count, Max, Min

    from governance.audit import Actor
    from governance.findings import Condition, finding_raise
    from governance.models import Finding

    policy = Policy.current()
    window = policy.decision_out_of_scope_window_minutes
    since = now - timedelta(minutes=window)
    denials = DecisionLog.objects.filter(out_of_scope=True, agent__isnull=False, decided_at__lte=now)
    candidates = list(
        denials.filter(decided_at__gt=since)
        .values("agent_id")
        .annotate(attempts=Count("id"))
        .filter(attempts__gte=policy.decision_out_of_scope_threshold)
        .values_list("agent_id", flat=True)
    )
    counts = {"opened": 0, "refreshed": 0}
    if not candidates:
        return counts
    kind = "out_of_scope_actions"
    findings = Finding.objects.filter(
        kind=kind, subject_type=ContentType.objects.get_for_model(Agent), subject_id__in=candidates
    )
    resolved = dict(
        findings.filter(status=Finding.Status.RESOLVED)
        .values("subject_id")
        .annotate(at=Max("resolved_at"))
        .values_list("subject_id", "at")
    )
    unresolved = {f.subject_id: f for f in findings.filter(status__in=Finding.UNRESOLVED)}
    actor = Actor.system("out-of-scope decision check")
    for agent in Agent.objects.filter(pk__in=candidates).order_by("pk"):
        cutoff = max(since, resolved.get(agent.pk) or since)
        recent = denials.filter(agent=agent, decided_at__gt=cutoff)
        summary = recent.aggregate(attempts=Count("id"), first=Min("decided_at"), last=Max("decided_at"))
        if summary["attempts"] < policy.decision_out_of_scope_threshold:
            continue
        tools = sorted(set(recent.values_list("tool_name", flat=True)[:200]))
        detail = (
            f"{agent.name} was denied {summary['attempts']} out-of-scope call(s) in the last {window} minutes "
            f"(tools: {', '.join(tools)})."
        )
        evidence = {
            "attempts": summary["attempts"],
            "window_minutes": window,
            "first": summary["first"].isoformat(),
            "last": summary["last"].isoformat(),
            "tools": tools,
        }
        existing = unresolved.get(agent.pk)
        if existing is not None:
            if existing.evidence != evidence:
                Finding.objects.filter(pk=existing.pk).update(
                    detail=detail, evidence=evidence, last_seen_at=max(existing.last_seen_at, summary["last"])
                )
                counts["refreshed"] += 1
            continue
        condition = Condition(subject=agent, agent_id=agent.pk, detail=detail, evidence=evidence)
        with transaction.atomic():
            _, created = finding_raise(actor=actor, kind=kind, condition=condition, now=now)
        counts["opened" if created else "refreshed"] += 1
    return counts


def decision_log_prune(*, now: datetime, batch_size: int = 10_000) -> dict[str, int]:
    """Delete decision-log entries older than ``Policy.decision_log_retention_days`` before ``now``
    (aware, UTC), in batches of ``batch_size``; one ``decision_log.prune`` audit event per run that
    deleted anything (how many, and the cut-off). Idempotent. Returns ``{"deleted": n}``."""
    from django.db import transaction

    from governance.audit import Actor, audit_record

    cutoff = now - timedelta(days=Policy.current().decision_log_retention_days)
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                DecisionLog.objects.filter(decided_at__lt=cutoff)
                .order_by("id")
                .values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                break
            deleted += DecisionLog.objects.filter(pk__in=ids).delete()[0]
    if deleted:
        with transaction.atomic():
            audit_record(
                actor=Actor.system("decision log retention"),
                verb="decision_log.prune",
                object_type="delegations.decisionlog",
                object_id="",
                object_label="Decision log",
                after={"deleted": deleted, "before": cutoff.isoformat()},
                at=now,
            )
    return {"deleted": deleted}
