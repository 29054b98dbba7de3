"""Who may see and change which agents — the one place these rules live.

Roles (``governance.roles``): IAM admins see and change everything; auditors see everything
and change nothing; an agent owner sees and changes the agents they own or back up.
UI views, API views and services all ask these functions.
"""

from django.db.models import Q

from governance.roles import can_read_all, is_agent_owner, is_iam_admin

from .models import Agent


def visible_agents_q(user) -> Q:
    """A ``Q`` over Agent for the agents ``user`` may see (everything for admins/auditors)."""
    if can_read_all(user):
        return Q()
    if not getattr(user, "is_authenticated", False):
        return Q(pk__in=[])
    return Q(owner=user) | Q(backup_owner=user)


def can_view_agent(user, agent: Agent) -> bool:
    """True if ``user`` may read ``agent`` and everything attached to it."""
    return can_read_all(user) or is_owner_of(user, agent)


def is_owner_of(user, agent: Agent) -> bool:
    """True if ``user`` is the agent's owner or backup owner (and an active person)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.pk in (agent.owner_id, agent.backup_owner_id)


def can_change_agent(user, agent: Agent) -> bool:
    """True if ``user`` may edit ``agent``, its identities, credentials and tools."""
    return is_iam_admin(user) or is_owner_of(user, agent)


def can_register_agent(user) -> bool:
    """IAM admins and agent owners may register agents (owners only for themselves)."""
    return is_iam_admin(user) or is_agent_owner(user)


def allowed_transitions(user, agent: Agent) -> list[str]:
    """The lifecycle actions ``user`` may take on ``agent`` now, by service name suffix.

    ``activate`` (proposed → active, IAM admin, needs an owner), ``reactivate`` (suspended →
    active, IAM admin), ``suspend`` (active → suspended, IAM admin or owner), ``decommission``
    (any non-terminal state, IAM admin or owner).
    """
    admin = is_iam_admin(user)
    owner = is_owner_of(user, agent)
    state = agent.state
    actions = []
    if state == Agent.State.PROPOSED and admin and agent.owner_id:
        actions.append("activate")
    if state == Agent.State.SUSPENDED and admin:
        actions.append("reactivate")
    if state == Agent.State.ACTIVE and (admin or owner):
        actions.append("suspend")
    if state != Agent.State.DECOMMISSIONED and (admin or owner):
        actions.append("decommission")
    return actions


def can_transfer_ownership(user, agent: Agent) -> bool:
    """Who may assign or transfer an agent's owner: IAM admins; the owner themselves; the backup
    owner only once the owner is no longer active (an orphaned agent). A backup owner cannot
    take an agent from an owner who is still there."""
    if is_iam_admin(user):
        return True
    if not getattr(user, "is_authenticated", False) or not user.is_active or agent.owner_id is None:
        return False
    if user.pk == agent.owner_id:
        return True
    return user.pk == agent.backup_owner_id and not agent.owner.is_active
