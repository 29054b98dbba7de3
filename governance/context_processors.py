"""Template context: the viewer's roles, so templates show only actions they may take."""

from governance.roles import is_agent_owner, is_auditor, is_iam_admin


def roles(request):
    user = getattr(request, "user", None)
    return {
        "viewer_is_iam_admin": is_iam_admin(user),
        "viewer_is_auditor": is_auditor(user),
        "viewer_is_agent_owner": is_agent_owner(user),
    }
