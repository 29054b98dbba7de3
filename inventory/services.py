"""Every write to the inventory: one function per use case.

Each service is keyword-only, takes the acting ``Actor``, checks permission
(``django.core.exceptions.PermissionDenied`` → 403), checks state (``governance.errors.Conflict``
→ 409), validates (``django.core.exceptions.ValidationError`` with field messages → 400), writes,
and records its audit event — all in one transaction (DESIGN.md invariant 2).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import slugify

from governance import events
from governance.audit import Actor, audit_record, snapshot, to_json
from governance.errors import Conflict, PermissionDenied, ValidationError
from governance.findings import Condition, finding_raise, findings_resolve_for, findings_sync
from governance.models import Policy
from governance.roles import can_own_agents, is_iam_admin

from .models import RESERVED_AGENT_SLUGS, AccessLevel, Agent, Credential, Team, Tool, WorkloadIdentity
from .permissions import can_change_agent, can_register_agent, can_transfer_ownership, can_view_agent

User = get_user_model()

AGENT_FIELDS = (
    "slug",
    "name",
    "purpose",
    "kind",
    "platform",
    "environment",
    "owner",
    "backup_owner",
    "team",
    "state",
    "state_reason",
    "autonomy_level",
    "data_classes",
    "risk_tier",
    "source",
    "external_ref",
)
AGENT_EDITABLE = ("name", "purpose", "kind", "platform", "environment", "team", "autonomy_level", "data_classes")
CREDENTIAL_FIELDS = (
    "agent",
    "kind",
    "provider",
    "external_id",
    "fingerprint",
    "label",
    "created_at",
    "last_rotated_at",
    "last_used_at",
    "usage_tracked",
    "observed_at",
    "expires_at",
    "rotation_period_days",
    "ephemeral",
    "status",
)
TOOL_FIELDS = (
    "agent",
    "name",
    "transport",
    "command",
    "args",
    "url",
    "env_keys",
    "access_levels",
    "data_classes",
    "destination",
    "source",
)


def _user_of(actor: Actor):
    return actor.user


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise PermissionDenied(message)


def _require_admin(actor: Actor, what: str) -> None:
    _require(actor.is_system or is_iam_admin(_user_of(actor)), f"Only IAM admins may {what}.")


def _require_can_change(actor: Actor, agent: Agent) -> None:
    _require(
        actor.is_system or can_change_agent(_user_of(actor), agent),
        "You may change only agents you own or back up.",
    )


def _lock_agent(agent: Agent) -> Agent:
    return Agent.objects.select_for_update().get(pk=agent.pk)


def _lock_changeable_agent(actor: Actor, agent: Agent, *, refusal: str) -> Agent:
    """Lock ``agent``, check ``actor`` may change it, and raise ``Conflict(refusal)`` if it is decommissioned."""
    agent = _lock_agent(agent)
    _require_can_change(actor, agent)
    if agent.state == Agent.State.DECOMMISSIONED:
        raise Conflict(refusal)
    return agent


def _check_person(user, field: str) -> None:
    """Refuse an owner or backup owner who is inactive, or not an agent owner or IAM admin."""
    if user is None:
        return
    if not user.is_active:
        raise ValidationError({field: f"{user.get_username()} is not an active person."})
    if not can_own_agents(user):
        raise ValidationError(
            {field: f"{user.get_username()} is not an agent owner or IAM admin, so cannot own agents."}
        )


def _unique_slug(name: str) -> str:
    base = slugify(name)[:90] or "agent"
    slug, n = base, 2
    while slug in RESERVED_AGENT_SLUGS or Agent.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


# --- teams ---------------------------------------------------------------------------------


def team_create(*, actor: Actor, name: str, slug: str = "", description: str = "") -> Team:
    """Create a team (IAM admins). Raises PermissionDenied, ValidationError."""
    _require_admin(actor, "create teams")
    with transaction.atomic():
        team = Team(name=name, slug=slug or slugify(name), description=description)
        team.full_clean()
        team.save()
        audit_record(actor=actor, verb="team.create", obj=team, after=snapshot(team, ("name", "slug", "description")))
    return team


def team_update(*, actor: Actor, team: Team, **changes) -> Team:
    """Change a team's ``name``, ``slug`` or ``description`` (IAM admins)."""
    _require_admin(actor, "change teams")
    unknown = set(changes) - {"name", "slug", "description"}
    if unknown:
        raise ValidationError({k: "This field cannot be changed." for k in unknown})
    with transaction.atomic():
        team = Team.objects.select_for_update().get(pk=team.pk)
        before = snapshot(team, changes)
        for k, v in changes.items():
            setattr(team, k, v)
        team.full_clean()
        team.save()
        audit_record(actor=actor, verb="team.update", obj=team, before=before, after=snapshot(team, changes))
    return team


def team_members_set(*, actor: Actor, team: Team, members) -> Team:
    """Make ``members`` (an iterable of users) exactly the team's members (IAM admins).

    Team members share the orphans queue of the team's agents. Inactive people cannot be
    added. Audited with the usernames before and after; no change, no event. Raises
    PermissionDenied, ValidationError.
    """
    _require_admin(actor, "change team membership")
    members = list(members)
    inactive = sorted(m.get_username() for m in members if not m.is_active)
    if inactive:
        raise ValidationError({"members": f"Not active: {', '.join(inactive)}."})
    with transaction.atomic():
        team = Team.objects.select_for_update().get(pk=team.pk)
        before = sorted(team.members.values_list("username", flat=True))
        after = sorted({m.get_username() for m in members})
        if before == after:
            return team
        team.members.set(members)
        audit_record(
            actor=actor, verb="team.set_members", obj=team, before={"members": before}, after={"members": after}
        )
    return team


# --- agents --------------------------------------------------------------------------------


def agent_register(
    *,
    actor: Actor,
    name: str,
    kind: str,
    owner,
    slug: str = "",
    purpose: str = "",
    platform: str = "",
    environment: str = Agent.Environment.PRODUCTION,
    backup_owner=None,
    team: Team | None = None,
    autonomy_level: str = Agent.Autonomy.HUMAN_IN_THE_LOOP,
    data_classes: list[str] | None = None,
    risk_tier: str = Agent.RiskTier.UNASSESSED,
) -> Agent:
    """Register an agent found by a person; it starts ``proposed`` with an owner from the start.

    An agent owner registers agents they own; an IAM admin may name any active person.
    Only IAM admins may give a ``risk_tier`` other than unassessed. Raises PermissionDenied,
    ValidationError (e.g. missing, inactive or ineligible owner, unknown data class).
    """
    user = _user_of(actor)
    _require(actor.is_system or can_register_agent(user), "Only IAM admins and agent owners may register agents.")
    if owner is None:
        raise ValidationError({"owner": "An agent registered by a person has an owner from the start."})
    if not actor.is_system and not is_iam_admin(user) and owner.pk != user.pk:
        raise PermissionDenied("Agent owners register agents they own themselves.")
    if risk_tier != Agent.RiskTier.UNASSESSED and not (actor.is_system or is_iam_admin(user)):
        raise PermissionDenied("Only IAM admins set a risk tier; the agent starts unassessed.")
    _check_person(owner, "owner")
    _check_person(backup_owner, "backup_owner")
    now = timezone.now()
    with transaction.atomic():
        agent = Agent(
            slug=slug or _unique_slug(name),
            name=name,
            purpose=purpose,
            kind=kind,
            platform=platform,
            environment=environment,
            owner=owner,
            backup_owner=backup_owner,
            team=team,
            state=Agent.State.PROPOSED,
            state_changed_at=now,
            autonomy_level=autonomy_level,
            data_classes=list(data_classes or []),
            risk_tier=risk_tier,
            source=Agent.Source.REGISTERED,
            created_at=now,
            updated_at=now,
        )
        if backup_owner is not None and backup_owner.pk == owner.pk:
            raise ValidationError({"backup_owner": "The backup owner must be someone other than the owner."})
        agent.full_clean()
        agent.save()
        audit_record(actor=actor, verb="agent.register", obj=agent, after=snapshot(agent, AGENT_FIELDS), at=now)
    return agent


def agent_update(*, actor: Actor, agent: Agent, **changes) -> Agent:
    """Change descriptive fields of an agent (``AGENT_EDITABLE``); owners and IAM admins.

    Lifecycle, ownership and risk tier change only through their own services.
    Raises PermissionDenied, Conflict (decommissioned), ValidationError (unknown field, bad value).
    """
    unknown = set(changes) - set(AGENT_EDITABLE)
    if unknown:
        raise ValidationError({k: "This field cannot be changed here." for k in sorted(unknown)})
    with transaction.atomic():
        agent = _lock_changeable_agent(actor, agent, refusal="A decommissioned agent cannot be changed.")
        before = snapshot(agent, changes)
        for k, v in changes.items():
            setattr(agent, k, v)
        agent.updated_at = timezone.now()
        agent.full_clean()
        agent.save()
        audit_record(actor=actor, verb="agent.update", obj=agent, before=before, after=snapshot(agent, changes))
    return agent


def _transition(*, actor: Actor, agent: Agent, action: str, to: str, reason: str, verb: str) -> Agent:
    """Lock, check permission (same rules as ``allowed_transitions``), check state, save, audit."""
    now = timezone.now()
    agent = _lock_agent(agent)
    user = _user_of(actor)
    if not actor.is_system:
        _require(is_iam_admin(user) or can_change_agent(user, agent), "You may change only agents you own or back up.")
        _require(action not in ADMIN_ONLY_TRANSITIONS or is_iam_admin(user), f"Only IAM admins may {action} an agent.")
    if agent.state not in _FROM_STATES[action]:
        raise Conflict(f"Cannot {action} an agent that is {agent.state}.")
    before = snapshot(agent, ("state", "state_reason"))
    agent.state = to
    agent.state_reason = reason
    agent.state_changed_at = now
    agent.updated_at = now
    agent.save(update_fields=["state", "state_reason", "state_changed_at", "updated_at"])
    audit_record(
        actor=actor, verb=verb, obj=agent, before=before, after=snapshot(agent, ("state", "state_reason")), at=now
    )
    return agent


ADMIN_ONLY_TRANSITIONS = ("activate", "reactivate")
_FROM_STATES = {
    "activate": (Agent.State.PROPOSED,),
    "reactivate": (Agent.State.SUSPENDED,),
    "suspend": (Agent.State.ACTIVE,),
    "decommission": (Agent.State.PROPOSED, Agent.State.ACTIVE, Agent.State.SUSPENDED),
}


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Give a reason; it is kept in the audit trail."})
    return reason


def agent_activate(*, actor: Actor, agent: Agent, reason: str = "") -> Agent:
    """Activate a proposed agent (IAM admins). It must have an active owner.

    Raises PermissionDenied, Conflict (not proposed), ValidationError (no active owner).
    """
    with transaction.atomic():
        locked = _lock_agent(agent)
        _require_admin(actor, "activate an agent")
        if locked.state == Agent.State.PROPOSED and locked.owner_id is None:
            raise ValidationError({"owner": "Assign an owner before activating this agent."})
        if locked.state == Agent.State.PROPOSED and not locked.owner.is_active:
            raise ValidationError({"owner": "The owner is no longer active; transfer ownership first."})
        return _transition(
            actor=actor,
            agent=agent,
            action="activate",
            to=Agent.State.ACTIVE,
            reason=reason.strip(),
            verb="agent.activate",
        )


def agent_reactivate(*, actor: Actor, agent: Agent, reason: str) -> Agent:
    """Return a suspended agent to active (IAM admins; a reason is required)."""
    reason = _require_reason(reason)
    with transaction.atomic():
        locked = _lock_agent(agent)
        _require_admin(actor, "reactivate an agent")
        if locked.state == Agent.State.SUSPENDED and not locked.owner.is_active:
            raise ValidationError({"owner": "The owner is no longer active; transfer ownership first."})
        return _transition(
            actor=actor, agent=agent, action="reactivate", to=Agent.State.ACTIVE, reason=reason, verb="agent.reactivate"
        )


def agent_suspend(*, actor: Actor, agent: Agent, reason: str) -> Agent:
    """Suspend an active agent at once (IAM admins, its owner or backup owner; reason required).

    Suspension blocks every decision for the agent immediately: enforcement reads the state.
    """
    reason = _require_reason(reason)
    with transaction.atomic():
        return _transition(
            actor=actor, agent=agent, action="suspend", to=Agent.State.SUSPENDED, reason=reason, verb="agent.suspend"
        )


def agent_decommission(*, actor: Actor, agent: Agent, reason: str) -> Agent:
    """Decommission an agent (terminal). Raises a finding for every credential still active.

    Announces ``agent.decommissioned`` in the same transaction so that parts above the
    inventory (delegations) revoke what the agent holds. Raises PermissionDenied, Conflict,
    ValidationError (no reason).
    """
    reason = _require_reason(reason)
    with transaction.atomic():
        agent = _transition(
            actor=actor,
            agent=agent,
            action="decommission",
            to=Agent.State.DECOMMISSIONED,
            reason=reason,
            verb="agent.decommission",
        )
        now = agent.state_changed_at
        for credential in agent.credentials.filter(status=Credential.Status.ACTIVE):
            finding_raise(
                actor=actor,
                kind="credential_on_decommissioned_agent",
                now=now,
                condition=Condition(
                    credential, agent.pk, detail=f"{credential} is still active although {agent} was decommissioned."
                ),
            )
        findings_resolve_for(actor=actor, kind="unowned_agent", subject=agent, now=now, note="Agent decommissioned.")
        events.announce("agent.decommissioned", agent=agent, actor=actor, now=now)
    return agent


def agent_assign_owner(*, actor: Actor, agent: Agent, owner, backup_owner=..., reason: str = "") -> Agent:
    """Assign or transfer ownership of an agent to an active person.

    Who may: ``inventory.permissions.can_transfer_ownership`` — IAM admins for any agent
    (including imported, ownerless ones), the owner for their own, the backup owner only once
    the owner has left. Owners and backup owners must be active agent owners or IAM admins
    (never auditors). Leaving ``backup_owner`` out keeps it. Resolves the agent's
    unowned-agent and orphaned-agent findings. Raises PermissionDenied, Conflict
    (decommissioned), ValidationError (missing, inactive or ineligible person, backup same as owner).
    """
    with transaction.atomic():
        agent = _lock_agent(agent)
        user = _user_of(actor)
        _require(
            actor.is_system or can_transfer_ownership(user, agent),
            "Only IAM admins and the agent's owner may transfer it (its backup owner may once the owner has left).",
        )
        if agent.state == Agent.State.DECOMMISSIONED:
            raise Conflict("A decommissioned agent cannot change owner.")
        if owner is None:
            raise ValidationError({"owner": "Name the person who will own this agent."})
        _check_person(owner, "owner")
        new_backup = agent.backup_owner if backup_owner is ... else backup_owner
        _check_person(new_backup, "backup_owner")
        if new_backup is not None and new_backup.pk == owner.pk:
            if backup_owner is ...:
                new_backup = None  # the backup becomes the owner
            else:
                raise ValidationError({"backup_owner": "The backup owner must be someone other than the owner."})
        before = snapshot(agent, ("owner", "backup_owner"))
        previous_owner_id = agent.owner_id
        agent.owner = owner
        agent.backup_owner = new_backup
        agent.updated_at = timezone.now()
        agent.save(update_fields=["owner", "backup_owner", "updated_at"])
        audit_record(
            actor=actor,
            verb="agent.assign_owner",
            obj=agent,
            before=before,
            after={**snapshot(agent, ("owner", "backup_owner")), "reason": reason},
        )
        for kind in ("unowned_agent", "orphaned_agent"):
            findings_resolve_for(
                actor=actor,
                kind=kind,
                subject=agent,
                now=agent.updated_at,
                note=f"Owner assigned: {owner.get_username()}.",
            )
        events.announce("agent.owner_changed", agent=agent, actor=actor, previous_owner_id=previous_owner_id)
    return agent


# --- workload identities -------------------------------------------------------------------


def workload_identity_add(
    *, actor: Actor, agent: Agent, type: str, identifier: str, issuer: str = ""
) -> WorkloadIdentity:
    """Bind a workload identity to an agent; one identity belongs to one agent (NHI9).

    Raises PermissionDenied, Conflict (decommissioned), ValidationError (taken by another agent, bad form).
    """
    with transaction.atomic():
        agent = _lock_changeable_agent(actor, agent, refusal="A decommissioned agent cannot gain identities.")
        identity = WorkloadIdentity(
            agent=agent, type=type, identifier=identifier.strip(), issuer=issuer.strip(), created_at=timezone.now()
        )
        identity.full_clean(validate_constraints=False)
        taken = (
            WorkloadIdentity.objects.filter(type=identity.type, issuer=identity.issuer, identifier=identity.identifier)
            .select_related("agent")
            .first()
        )
        if taken is not None:
            # Name the holder only to someone who may see it: the refusal must not reveal other owners' agents.
            if actor.is_system or can_view_agent(actor.user, taken.agent):
                holder = f"agent {taken.agent.slug}"
            else:
                holder = "another agent (one you cannot see; an IAM admin can tell which)"
            raise ValidationError(
                {"identifier": f"This identity already belongs to {holder}; each agent needs its own (OWASP NHI9)."}
            )
        identity.save()
        audit_record(
            actor=actor,
            verb="workload_identity.add",
            obj=identity,
            after=snapshot(identity, ("agent", "type", "issuer", "identifier")),
        )
    return identity


def workload_identity_remove(*, actor: Actor, identity: WorkloadIdentity) -> None:
    """Unbind a workload identity from its agent. Raises PermissionDenied."""
    with transaction.atomic():
        identity = WorkloadIdentity.objects.select_for_update().select_related("agent").get(pk=identity.pk)
        _require_can_change(actor, identity.agent)
        audit_record(
            actor=actor,
            verb="workload_identity.remove",
            obj=identity,
            before=snapshot(identity, ("agent", "type", "issuer", "identifier")),
        )
        identity.delete()


# --- credentials ---------------------------------------------------------------------------


def credential_record(
    *,
    actor: Actor,
    agent: Agent,
    kind: str,
    provider: str,
    external_id: str,
    created_at: datetime,
    fingerprint: str = "",
    label: str = "",
    last_rotated_at: datetime | None = None,
    last_used_at: datetime | None = None,
    usage_tracked: bool = True,
    observed_at: datetime | None = None,
    expires_at: datetime | None = None,
    rotation_period_days: int | None = None,
    ephemeral: bool = False,
) -> Credential:
    """Record a credential an agent holds (never its secret: give ``fingerprint`` as sha256:<hex>).

    ``observed_at`` (default now, UTC) is when the usage data was true. Raises PermissionDenied,
    Conflict (decommissioned agent), ValidationError (duplicate provider + external id, dates).
    """
    now = timezone.now()
    with transaction.atomic():
        agent = _lock_changeable_agent(actor, agent, refusal="A decommissioned agent cannot be given credentials.")
        credential = Credential(
            agent=agent,
            kind=kind,
            provider=provider,
            external_id=external_id,
            fingerprint=fingerprint,
            label=label,
            created_at=created_at,
            last_rotated_at=last_rotated_at,
            last_used_at=last_used_at,
            usage_tracked=usage_tracked,
            observed_at=observed_at or now,
            expires_at=expires_at,
            rotation_period_days=rotation_period_days,
            ephemeral=ephemeral,
            status=Credential.Status.ACTIVE,
            status_changed_at=now,
            recorded_at=now,
        )
        _check_credential_dates(credential, now)
        credential.full_clean()
        credential.save()
        audit_record(
            actor=actor, verb="credential.record", obj=credential, after=snapshot(credential, CREDENTIAL_FIELDS), at=now
        )
    return credential


CLOCK_SKEW = timedelta(minutes=5)


def _check_credential_dates(credential: Credential, now: datetime) -> None:
    """Refuse credential dates that cannot be true as of ``now`` (UTC), allowing 5 minutes of clock skew:
    creation, rotation, use and observation in the future, or rotation and use before creation."""
    c, errors = credential, {}
    latest = now + CLOCK_SKEW
    for name in ("created_at", "last_rotated_at", "last_used_at", "observed_at"):
        value = getattr(c, name)
        if value is not None and value > latest:
            errors[name] = "This cannot be in the future."
    for name in ("last_rotated_at", "last_used_at"):
        value = getattr(c, name)
        if name not in errors and value is not None and c.created_at is not None and value < c.created_at:
            errors[name] = "This cannot be before the credential was created."
    if errors:
        raise ValidationError(errors)


def credential_rotate(
    *,
    actor: Actor,
    credential: Credential,
    rotated_at: datetime | None = None,
    fingerprint: str = "",
    expires_at: datetime | None = None,
) -> Credential:
    """Record that a credential was rotated at ``rotated_at`` (default now, UTC).

    Resolves its unrotated and expiry findings at once. Raises PermissionDenied, Conflict
    (revoked), ValidationError (rotation in the future or before creation).
    """
    now = timezone.now()
    rotated_at = rotated_at or now
    with transaction.atomic():
        credential = Credential.objects.select_for_update().select_related("agent").get(pk=credential.pk)
        _require_can_change(actor, credential.agent)
        if credential.status == Credential.Status.REVOKED:
            raise Conflict("A revoked credential cannot be rotated; record a new one.")
        if credential.agent.state == Agent.State.DECOMMISSIONED:
            raise Conflict("The agent is decommissioned: revoke this credential instead of rotating it.")
        if rotated_at > now:
            raise ValidationError({"rotated_at": "A rotation cannot be in the future."})
        if rotated_at < credential.created_at:
            raise ValidationError({"rotated_at": "A rotation cannot be before the credential was created."})
        fields = ("last_rotated_at", "fingerprint", "expires_at")
        before = snapshot(credential, fields)
        credential.last_rotated_at = rotated_at
        if fingerprint:
            credential.fingerprint = fingerprint
        if expires_at is not None:
            credential.expires_at = expires_at
        credential.full_clean()
        credential.save()
        audit_record(
            actor=actor,
            verb="credential.rotate",
            obj=credential,
            before=before,
            after=snapshot(credential, fields),
            at=now,
        )
        for kind in ("unrotated_credential", "expiring_credential", "expired_credential_active"):
            findings_resolve_for(actor=actor, kind=kind, subject=credential, now=now, note="Credential rotated.")
    return credential


def credential_revoke(*, actor: Actor, credential: Credential, reason: str) -> Credential:
    """Mark a credential revoked (it was revoked at its provider). A revoked credential raises nothing.

    Resolves every unresolved finding on it. Raises PermissionDenied, Conflict (already revoked),
    ValidationError (no reason).
    """
    reason = _require_reason(reason)
    now = timezone.now()
    with transaction.atomic():
        credential = Credential.objects.select_for_update().select_related("agent").get(pk=credential.pk)
        _require_can_change(actor, credential.agent)
        if credential.status == Credential.Status.REVOKED:
            raise Conflict("This credential is already revoked.")
        before = snapshot(credential, ("status",))
        credential.status = Credential.Status.REVOKED
        credential.status_changed_at = now
        credential.save(update_fields=["status", "status_changed_at"])
        audit_record(
            actor=actor,
            verb="credential.revoke",
            obj=credential,
            before=before,
            after={"status": "revoked", "reason": reason},
            at=now,
        )
        findings_resolve_for(actor=actor, subject=credential, now=now, note="Credential revoked.")
    return credential


# --- tools ---------------------------------------------------------------------------------


def tool_add(
    *,
    actor: Actor,
    agent: Agent,
    name: str,
    transport: str,
    command: str = "",
    args: list | None = None,
    url: str = "",
    env_keys: list | None = None,
    access_levels: list | None = None,
    data_classes: list | None = None,
    destination: str = Tool.Destination.INTERNAL,
    source: str = "",
) -> Tool:
    """Add a tool the agent can call. Raises PermissionDenied, Conflict, ValidationError (duplicate name, bad lists)."""
    now = timezone.now()
    with transaction.atomic():
        agent = _lock_changeable_agent(actor, agent, refusal="A decommissioned agent cannot gain tools.")
        tool = Tool(
            agent=agent,
            name=name,
            transport=transport,
            command=command,
            args=list(args or []),
            url=url,
            env_keys=list(env_keys or []),
            access_levels=list(access_levels if access_levels is not None else [AccessLevel.READ]),
            data_classes=list(data_classes or []),
            destination=destination,
            source=source,
            created_at=now,
            updated_at=now,
        )
        tool.full_clean()
        tool.save()
        audit_record(actor=actor, verb="tool.add", obj=tool, after=snapshot(tool, TOOL_FIELDS), at=now)
    return tool


def tool_update(*, actor: Actor, tool: Tool, **changes) -> Tool:
    """Change a tool's fields (not its agent). Raises PermissionDenied, ValidationError."""
    allowed = set(TOOL_FIELDS) - {"agent"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError({k: "This field cannot be changed." for k in sorted(unknown)})
    with transaction.atomic():
        tool = Tool.objects.select_for_update().select_related("agent").get(pk=tool.pk)
        _require_can_change(actor, tool.agent)
        if tool.agent.state == Agent.State.DECOMMISSIONED:
            raise Conflict("A decommissioned agent's tools cannot be changed.")
        before = snapshot(tool, changes)
        for k, v in changes.items():
            setattr(tool, k, v)
        tool.updated_at = timezone.now()
        tool.full_clean()
        tool.save()
        audit_record(actor=actor, verb="tool.update", obj=tool, before=before, after=snapshot(tool, changes))
    return tool


def tool_remove(*, actor: Actor, tool: Tool) -> None:
    """Remove a tool from its agent; its unresolved findings (e.g. a literal secret in its
    configuration) resolve, since their subject is gone. Raises PermissionDenied."""
    with transaction.atomic():
        tool = Tool.objects.select_for_update().select_related("agent").get(pk=tool.pk)
        _require_can_change(actor, tool.agent)
        audit_record(actor=actor, verb="tool.remove", obj=tool, before=snapshot(tool, TOOL_FIELDS))
        findings_resolve_for(actor=actor, subject=tool, now=timezone.now(), note="The tool was removed.")
        tool.delete()


# --- the stale-credential job --------------------------------------------------------------

CREDENTIAL_FINDING_KINDS = (
    "unused_credential",
    "unrotated_credential",
    "expiring_credential",
    "expired_credential_active",
    "credential_on_decommissioned_agent",
    "console_password_on_nhi",
)


def _days(n: int) -> timedelta:
    return timedelta(days=n)


def credentials_flag_stale_due(*, now: datetime, actor: Actor | None = None) -> dict[str, dict[str, int]]:
    """Open, refresh and resolve credential findings as of ``now`` (UTC); set-based and idempotent.

    Only active credentials raise findings (an inactive or revoked one raises nothing):

    - ``unused_credential`` — usage tracked and last used more than ``Policy.unused_after_days``
      before its ``observed_at``; or never used and created more than ``never_used_grace_days``
      before its ``observed_at``. Usage is judged as of what the source knew (OWASP NHI1).
    - ``unrotated_credential`` — last rotated (or created) more than its rotation period
      (its own, else the policy's) before ``now`` (NHI7). Console passwords are judged by
      ``console_password_on_nhi`` instead.
    - ``expiring_credential`` — expires within ``expiring_within_days`` after ``now``.
    - ``expired_credential_active`` — expired at or before ``now`` but still active.
    - ``credential_on_decommissioned_agent`` — still active on a decommissioned agent (NHI1).
    - ``console_password_on_nhi`` — an agent holds a console password (NHI10).

    Returns per-kind counts from ``governance.findings.findings_sync``.
    """
    actor = actor or Actor.system("stale-credential job")
    policy = Policy.current()
    active = Credential.objects.filter(status=Credential.Status.ACTIVE).select_related("agent")
    unused_before = F("observed_at") - _days(policy.unused_after_days)
    grace_before = F("observed_at") - _days(policy.never_used_grace_days)
    password = Q(kind=Credential.Kind.CONSOLE_PASSWORD)
    rules: dict[str, Q] = {
        "unused_credential": ~password
        & Q(usage_tracked=True)
        & (
            Q(last_used_at__isnull=False, last_used_at__lt=unused_before)
            | Q(last_used_at__isnull=True, created_at__lt=grace_before)
        ),
        "unrotated_credential": ~password & Q(rotation_due_at__lt=now),
        "expiring_credential": Q(expires_at__gt=now, expires_at__lte=now + _days(policy.expiring_within_days)),
        "expired_credential_active": Q(expires_at__lte=now),
        "credential_on_decommissioned_agent": Q(agent__state=Agent.State.DECOMMISSIONED),
        "console_password_on_nhi": password,
    }
    annotated = active.with_rotation_due(policy.rotation_period_days)
    return {
        kind: findings_sync(
            actor=actor,
            kind=kind,
            subject_model=Credential,
            now=now,
            subjects=annotated.filter(q),
            describe=lambda c, kind=kind: _credential_condition(kind, c, policy, now),
        )
        for kind, q in rules.items()
    }


def _fmt(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if dt else "never"


def _credential_condition(kind: str, c: Credential, policy: Policy, now: datetime) -> Condition:
    agent = c.agent
    if kind == "unused_credential":
        if c.last_used_at is None:
            detail = (
                f"Never used; created {_fmt(c.created_at)}, more than {policy.never_used_grace_days} days "
                f"before the source's report of {_fmt(c.observed_at)}."
            )
        else:
            detail = (
                f"Last used {_fmt(c.last_used_at)}, more than {policy.unused_after_days} days before the "
                f"source's report of {_fmt(c.observed_at)}."
            )
        evidence = {"last_used_at": c.last_used_at, "observed_at": c.observed_at}
    elif kind == "unrotated_credential":
        period = c.rotation_period_days or policy.rotation_period_days
        anchor = c.last_rotated_at or c.created_at
        detail = f"Last rotated {_fmt(anchor)}; the rotation period is {period} days."
        evidence = {"last_rotated_at": anchor, "rotation_period_days": period}
    elif kind in ("expiring_credential", "expired_credential_active"):
        detail = f"Expires {_fmt(c.expires_at)}."
        evidence = {"expires_at": c.expires_at}
    elif kind == "credential_on_decommissioned_agent":
        detail = f"{agent} was decommissioned but this credential is still active."
        evidence = {"agent_state": agent.state}
    else:
        detail = f"{agent} is a non-human identity but can sign in to a console with a password."
        evidence = {"kind": c.kind}
    return Condition(subject=c, agent_id=agent.pk, detail=detail, evidence=to_json(evidence))


def credentials_flag_stale_now(*, actor: Actor) -> dict[str, dict[str, int]]:
    """Run the stale-credential check at once, as of now (UTC), on a person's request (IAM admins).

    The same set-based, idempotent job as ``credentials_flag_stale_due``, with ``actor``
    recorded on the findings it opens and resolves. Raises PermissionDenied.
    """
    _require_admin(actor, "run the stale-credential check")
    return credentials_flag_stale_due(now=timezone.now(), actor=actor)


# --- people --------------------------------------------------------------------------------


def _lock_person(user):
    return User.objects.select_for_update().get(pk=user.pk)


def person_deactivate(*, actor: Actor, user, reason: str):
    """Deactivate a person who has left (IAM admins; a reason is required and audited).

    Sets ``is_active`` to False — they can no longer sign in, their integration tokens stop at
    once (``IntegrationToken.is_usable``) — writes ``person.deactivate`` and announces
    ``person.deactivated`` in the same transaction, so that each live agent they own becomes an
    orphaned-agent finding at once and their pending grant requests are cancelled (DESIGN.md
    invariant 7). The web UI, the API and the Django admin's user form all come here.
    Raises PermissionDenied (not an IAM admin, or deactivating oneself), Conflict (already
    inactive), ValidationError (no reason).
    """
    _require_admin(actor, "deactivate people")
    reason = _require_reason(reason)
    acting = _user_of(actor)
    if acting is not None and acting.pk == user.pk:
        raise PermissionDenied("You cannot deactivate yourself; another IAM admin does.")
    now = timezone.now()
    with transaction.atomic():
        user = _lock_person(user)
        if not user.is_active:
            raise Conflict(f"{user.get_username()} is already inactive.")
        user.is_active = False
        user.save(update_fields=["is_active"])
        owned = list(
            Agent.objects.filter(owner_id=user.pk, state__in=Agent.LIVE_STATES)
            .order_by("pk")
            .values_list("slug", flat=True)
        )
        audit_record(
            actor=actor,
            verb="person.deactivate",
            obj=user,
            before={"is_active": True},
            after={"is_active": False, "reason": reason, "live_agents_owned": owned},
            at=now,
        )
        events.announce("person.deactivated", user=user, actor=actor, now=now)
    return user


def person_reactivate(*, actor: Actor, user, reason: str):
    """Reactivate a person (IAM admins; a reason is required and audited).

    The orphaned-agent findings of the live agents they still own resolve: their owner is back.
    Pending requests cancelled at the deactivation stay cancelled. Raises PermissionDenied,
    Conflict (already active), ValidationError (no reason).
    """
    _require_admin(actor, "reactivate people")
    reason = _require_reason(reason)
    now = timezone.now()
    with transaction.atomic():
        user = _lock_person(user)
        if user.is_active:
            raise Conflict(f"{user.get_username()} is already active.")
        user.is_active = True
        user.save(update_fields=["is_active"])
        audit_record(
            actor=actor,
            verb="person.reactivate",
            obj=user,
            before={"is_active": False},
            after={"is_active": True, "reason": reason},
            at=now,
        )
        for agent in Agent.objects.filter(owner_id=user.pk, state__in=Agent.LIVE_STATES).order_by("pk"):
            findings_resolve_for(
                actor=actor,
                kind="orphaned_agent",
                subject=agent,
                now=now,
                note=f"Its owner {user.get_username()} was reactivated.",
            )
    return user
