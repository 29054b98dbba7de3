"""Roles as groups: IAM admin, agent owner, auditor. Part of the kernel: imports no app.

A superuser counts as an IAM admin. An agent owner sees and changes the agents they own
(or back up); an auditor reads everything and changes nothing.
"""

from django.contrib.auth.models import Group
from django.db.models import Q

IAM_ADMIN = "IAM admin"
AGENT_OWNER = "Agent owner"
AUDITOR = "Auditor"
ROLE_NAMES = (IAM_ADMIN, AGENT_OWNER, AUDITOR)


def _groups(user) -> set[str]:
    if not getattr(user, "is_authenticated", False):
        return set()
    cached = getattr(user, "_warrant_groups", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._warrant_groups = cached
    return cached


def is_iam_admin(user) -> bool:
    """True for active superusers and members of the IAM admin group."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.is_superuser or IAM_ADMIN in _groups(user)


def is_auditor(user) -> bool:
    """True for members of the Auditor group."""
    return bool(getattr(user, "is_active", False)) and AUDITOR in _groups(user)


def is_agent_owner(user) -> bool:
    """True for members of the Agent owner group (people who register and run agents)."""
    return bool(getattr(user, "is_active", False)) and AGENT_OWNER in _groups(user)


def can_own_agents(user) -> bool:
    """True for active agent owners and IAM admins: the people an agent may be owned or backed up by.

    Auditors never own agents (separation of duties: they review what owners do).
    """
    return bool(getattr(user, "is_active", False)) and (is_agent_owner(user) or is_iam_admin(user))


def agent_owner_candidates_q() -> Q:
    """``can_own_agents`` as a ``Q`` over users, for lists of people to choose an owner from."""
    return Q(is_active=True) & (Q(is_superuser=True) | Q(groups__name__in=[AGENT_OWNER, IAM_ADMIN]))


def can_read_all(user) -> bool:
    """IAM admins and auditors read every object; others read what they own."""
    return is_iam_admin(user) or is_auditor(user)


def ensure_groups() -> None:
    """Create the three role groups if they are missing (idempotent)."""
    for name in ROLE_NAMES:
        Group.objects.get_or_create(name=name)
