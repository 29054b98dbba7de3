"""Importers: the inventory's real input (AWS IAM credential reports, MCP client configurations).

``run_import`` is the one entry point used by the ``import_inventory`` command, the upload page
and ``POST /api/v1/imports/``. An import is all-or-nothing: the file is parsed completely
first (no database), then applied in one transaction with its audit events; a malformed file
raises one ``ImportFailed`` naming line and column and writes nothing. Re-importing the same
file changes nothing in the inventory; each run is kept as an ``ImportRun`` with the file's
SHA-256 and one ``import.run`` audit event.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from governance.audit import Actor, audit_record
from governance.errors import Conflict, PermissionDenied
from governance.roles import is_iam_admin

from ..models import Agent, ImportRun
from ..permissions import can_change_agent
from . import aws, mcp
from .base import ImportFailed, sha256_hex

AWS_CREDENTIAL_REPORT = ImportRun.Source.AWS_CREDENTIAL_REPORT.value
MCP_CONFIG = ImportRun.Source.MCP_CONFIG.value

SOURCES: dict[str, str] = {
    AWS_CREDENTIAL_REPORT: "AWS IAM credential report (CSV, or the JSON of aws iam get-credential-report)",
    MCP_CONFIG: "MCP client configuration (Claude Desktop, VS Code mcp.json, project .mcp.json) for one agent",
}

__all__ = ["AWS_CREDENTIAL_REPORT", "MCP_CONFIG", "SOURCES", "ImportFailed", "run_import"]


def run_import(
    *,
    actor: Actor,
    source: str,
    content: bytes,
    filename: str,
    agent: Agent | None = None,
    observed_at: datetime | None = None,
) -> ImportRun:
    """Import one file and return its ``ImportRun`` (``summary`` holds the counts).

    - ``source``: ``"aws-credential-report"`` (IAM admins only; agents found have no owner) or
      ``"mcp-config"`` (``agent`` required: the agent whose client this configures; its owners
      and IAM admins may import; at most ``mcp.MAX_BYTES`` (1 MiB) and ``mcp.MAX_SERVERS``
      servers; permission and the agent's state are checked before the file is read).
    - ``content``: the file's bytes; ``filename``: its name, kept on the run and the tools.
    - ``observed_at``: aware datetime; for a raw CSV credential report, when it was generated
      (the JSON form carries ``GeneratedTime``, which takes precedence).

    An option that does not apply to ``source`` is refused rather than ignored: ``agent`` with a
    credential report, ``observed_at`` with an MCP configuration. Messages speak of the options
    by name ("agent", "observed at"), never of one client's flags: the shell, the upload page and
    the API show them alike.

    Raises ``ImportFailed`` (a field-keyed ``ValidationError`` on ``file``, ``agent``,
    ``observed_at`` or ``source``; HTTP 400), ``PermissionDenied`` (403), ``Conflict`` (409,
    a decommissioned agent). Writes nothing when it raises.
    """
    if source not in SOURCES:
        raise ImportFailed(f"Unknown source {source!r}; expected one of {', '.join(SOURCES)}.", field="source")
    if source == AWS_CREDENTIAL_REPORT and agent is not None:
        raise ImportFailed(
            "The agent applies only to an MCP client configuration; an AWS credential report finds its "
            "agents itself. Leave the agent blank.",
            field="agent",
        )
    if source == MCP_CONFIG and observed_at is not None:
        raise ImportFailed(
            "Observed at applies only to an AWS credential report (a raw CSV report's generation time); an MCP "
            "client configuration is imported as it is now. Leave observed at blank.",
            field="observed_at",
        )
    if not isinstance(content, bytes | bytearray):
        raise TypeError("content must be the file's bytes")
    content = bytes(content)
    now = timezone.now()
    if source == AWS_CREDENTIAL_REPORT:
        _require(actor.is_system or is_iam_admin(actor.user), "Only IAM admins may import AWS credential reports.")
        report = aws.parse(content, observed_at=observed_at, now=now)
        with transaction.atomic():
            summary = {"format": report.format, **aws.apply(report, actor=actor, now=now)}
            return _record_run(
                actor=actor,
                source=source,
                content=content,
                filename=filename,
                agent=None,
                observed_at=report.observed_at,
                summary=summary,
                now=now,
            )

    if agent is None:
        raise ImportFailed("Name the agent whose MCP client configuration this is.", field="agent")
    # Who may import and whether the agent may gain tools are settled before the file is read,
    # on the agent as it is now, and again under its lock.
    _check_mcp_target(actor, Agent.objects.get(pk=agent.pk))
    config = mcp.parse(content)
    with transaction.atomic():
        agent = Agent.objects.select_for_update().get(pk=agent.pk)
        _check_mcp_target(actor, agent)
        summary = {"layout": config.layout, **mcp.apply(config, actor=actor, agent=agent, filename=filename, now=now)}
        return _record_run(
            actor=actor,
            source=source,
            content=content,
            filename=filename,
            agent=agent,
            observed_at=None,
            summary=summary,
            now=now,
        )


def _check_mcp_target(actor: Actor, agent: Agent) -> None:
    """Raise ``PermissionDenied`` unless ``actor`` may change ``agent``, ``Conflict`` if it is decommissioned."""
    _require(
        actor.is_system or can_change_agent(actor.user, agent),
        "You may import tools only for agents you own or back up.",
    )
    if agent.state == Agent.State.DECOMMISSIONED:
        raise Conflict("A decommissioned agent cannot gain tools.")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise PermissionDenied(message)


def _record_run(
    *,
    actor: Actor,
    source: str,
    content: bytes,
    filename: str,
    agent: Agent | None,
    observed_at: datetime | None,
    summary: dict,
    now: datetime,
) -> ImportRun:
    run = ImportRun(
        source=source,
        filename=(filename or "")[:255],
        sha256=sha256_hex(content),
        observed_at=observed_at,
        created_at=now,
        actor_type=actor.type,
        actor_label=actor.label[:200],
        agent=agent,
        summary=summary,
    )
    run.full_clean()
    run.save()
    audit_record(
        actor=actor,
        verb="import.run",
        obj=run,
        at=now,
        after={
            "source": source,
            "filename": run.filename,
            "sha256": run.sha256,
            "agent": agent.slug if agent else None,
            "observed_at": observed_at,
            "summary": summary,
        },
    )
    return run
