"""MCP client configuration → the tools of one agent, and literal-secret findings.

Reads the three common layouts, all parsed as JSON5 (comments and trailing commas allowed):

- Claude Desktop ``claude_desktop_config.json`` and project ``.mcp.json``: ``{"mcpServers": {…}}``,
  with ``${VAR}`` and ``${VAR:-default}`` expansion in the project file;
- VS Code ``.vscode/mcp.json``: ``{"inputs": […], "servers": {…}}`` with ``${input:id}`` references.

Each server becomes a Tool of the agent: transport ``stdio`` (a ``command``), ``http`` or ``sse``
(a ``url``); its command, args, URL and the *names* of its environment variables (never their
values). Destination is internal for stdio servers and for URLs on localhost, private
addresses and ``.internal``/``.local``/``.corp``/``.lan`` hosts, external otherwise (an
unresolved ``${VAR}`` host counts as external). Access is read-only when the configuration says
so (``--read-only``, ``readonly``); otherwise read, write and execute, since an unknown scope
is a broad one.

A literal secret in ``env``, ``headers``, a URL (userinfo password, token-like query
parameters), the command or the arguments raises one ``literal_secret_in_config`` finding on
the tool (OWASP NHI2) that keeps each secret's location, kind and keyed fingerprint
(``inventory.secrets.fingerprint``) only; stored URLs and arguments have the secret replaced by
``REDACTED``. What counts as a secret is decided in ``inventory.secrets``, the same rules that
make ``Tool.clean`` refuse one; ``${…}`` and ``${input:…}`` references are not secrets.

An import describes the whole of one file: a tool of the agent whose ``source`` is this file's
name and that the file no longer lists is removed (``tool.remove``), its unresolved findings
resolved. Tools from other files or registered by hand are left alone.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

import json5
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db.models import Q

from governance.audit import Actor, PendingEvent, audit_record_many, object_type_of, snapshot
from governance.findings import Condition, findings_resolve_for, findings_sync
from governance.models import Finding

from ..models import AccessLevel, Agent, Tool
from ..secrets import ENV_NAME, SecretHit, SecretScanner
from .base import decode_text, fail, find_key, locate_key, offset_of

FINDING_KIND = "literal_secret_in_config"
# A client's configuration is a few KB; these bounds keep an import well inside a web request.
MAX_BYTES = 1024 * 1024
MAX_SERVERS = 200
INTERNAL_SUFFIXES = (".internal", ".local", ".corp", ".lan", ".localhost", ".home.arpa")
# A host with one of these labels anywhere (payments.internal.example.com) is an internal name.
INTERNAL_LABELS = frozenset({"internal", "intranet", "corp", "lan", "local", "localhost", "private"})
TRANSPORTS = {
    "stdio": Tool.Transport.STDIO,
    "http": Tool.Transport.HTTP,
    "streamable-http": Tool.Transport.HTTP,
    "streamablehttp": Tool.Transport.HTTP,
    "sse": Tool.Transport.SSE,
}
BROAD_ACCESS = [AccessLevel.READ, AccessLevel.WRITE, AccessLevel.EXECUTE]

# --- parse (no database) --------------------------------------------------------------------


@dataclass(frozen=True)
class McpServer:
    """One server entry, ready to become a Tool. ``args`` and ``url`` are already redacted."""

    name: str
    line: int
    transport: str
    command: str
    args: tuple[str, ...]
    url: str
    env_keys: tuple[str, ...]
    access_levels: tuple[str, ...]
    destination: str
    secrets: tuple[SecretHit, ...]


@dataclass(frozen=True)
class McpConfig:
    """A parsed client configuration: its layout (``mcpServers`` or ``servers``) and servers in file order."""

    layout: str
    servers: tuple[McpServer, ...]


def parse(content: bytes) -> McpConfig:
    """Parse an MCP client configuration (JSON5); touches no database.

    Raises ``ImportFailed`` for the first problem, naming line and column: a file over
    ``MAX_BYTES`` or with more than ``MAX_SERVERS`` servers (refused before the servers are
    read), a syntax error (as the JSON5 parser reports it), neither ``mcpServers`` nor
    ``servers``, a server that is not an object or has neither ``command`` nor ``url``, fields of
    the wrong type, an unknown ``type``.
    """
    if len(content) > MAX_BYTES:
        raise fail(
            f"An MCP client configuration may be at most {MAX_BYTES // 1024} KiB ({MAX_BYTES // (1024 * 1024)} MiB); "
            f"this file is {len(content) // 1024} KiB. Import each client's own configuration file.",
            1,
            1,
        )
    text = decode_text(content)
    doc = _load(text)
    if not isinstance(doc, dict):
        raise fail("Expected a JSON object with mcpServers (Claude Desktop, .mcp.json) or servers (VS Code).", 1, 1)
    containers = [k for k in ("mcpServers", "servers") if k in doc]
    if not containers:
        raise fail(
            "No MCP servers: the file has neither mcpServers (Claude Desktop, .mcp.json) nor servers "
            "(VS Code mcp.json).",
            1,
            1,
        )
    total = sum(len(doc[c]) for c in containers if isinstance(doc[c], dict))
    if total > MAX_SERVERS:
        raise fail(
            f"An MCP client configuration may list at most {MAX_SERVERS} servers; this file lists {total}.",
            *(locate_key(text, containers[0]) or (1, 1)),
        )
    servers: list[McpServer] = []
    names: set[str] = set()
    for container in containers:
        block = doc[container]
        block_pos = locate_key(text, container) or (1, 1)
        if not isinstance(block, dict):
            raise fail(f"{container} must be an object mapping server names to their settings.", *block_pos)
        # Servers come in file order: each one's key is searched from the previous one's, and its
        # line counted from there, so locating every server reads the file once.
        block_offset = offset_of(text, *block_pos)
        cursor, cursor_line = block_offset, block_pos[0]
        for name, entry in block.items():
            found = find_key(text, name, cursor)
            if found is None:
                pos, start = block_pos, block_offset
            else:
                cursor_line += text.count("\n", cursor, found)
                cursor = start = found
                pos = (cursor_line, found - text.rfind("\n", 0, found))
            if name in names:
                raise fail(f"Server {name!r} is defined twice.", *pos)
            names.add(name)
            servers.append(_parse_server(text, container, name, entry, pos, start))
    return McpConfig(layout=containers[0], servers=tuple(servers))


_STRING_OR_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"|//[^\n]*|/\*.*?\*/', re.DOTALL)
_STRING_OR_TRAILING_COMMA = re.compile(r'"(?:[^"\\\n]|\\.)*"|,(?=\s*[}\]])')


def _blank(match: re.Match) -> str:
    """A comment or trailing comma as spaces (newlines kept, so positions do not move); a string as is."""
    token = match.group()
    return token if token.startswith('"') else re.sub(r"[^\n]", " ", token)


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(f'Duplicate key "{key}" found in object')


def _load(text: str):
    """The document. JSON with comments and trailing commas (what clients write) is read by the
    standard library's parser; anything else is left to the JSON5 parser, which is far slower
    and therefore used only for the files that need it, and for its error messages."""
    try:
        return json.loads(
            _STRING_OR_TRAILING_COMMA.sub(_blank, _STRING_OR_COMMENT.sub(_blank, text)),
            object_pairs_hook=_no_duplicates,
        )
    except _DuplicateKey as exc:
        raise _syntax_error(text, str(exc))
    except RecursionError:
        raise fail("The document nests too deeply.", 1, 1)
    except ValueError:
        pass
    try:
        return json5.loads(text, allow_duplicate_keys=False)
    except ValueError as exc:
        raise _syntax_error(text, str(exc))
    except RecursionError:
        raise fail("The document nests too deeply.", 1, 1)


def _syntax_error(text: str, message: str):
    m = re.match(r"^<string>:(\d+) (.*) at column (\d+)$", message, re.DOTALL)
    if m:
        return fail(f"Not valid JSON/JSON5: {m.group(2)}.", int(m.group(1)), int(m.group(3)))
    dup = re.match(r'^Duplicate key "(.*)" found in object$', message)
    if dup:
        first = locate_key(text, dup.group(1))
        second = locate_key(text, dup.group(1), offset_of(text, *first) + 1) if first else None
        line, column = second or first or (1, 1)
        return fail(f"Key {dup.group(1)!r} appears twice in the same object.", line, column)
    if "Empty" in message:
        return fail("The file is empty.", 1, 1)
    return fail(f"Not valid JSON/JSON5: {message}", 1, 1)


def _parse_server(text: str, container: str, name: str, entry, pos: tuple[int, int], start: int) -> McpServer:
    """One server entry; ``pos`` (line, column) and ``start`` (character offset) locate its key."""
    where = f"{container}.{name}"
    line = pos[0]

    def error(message: str, key: str | None = None):
        at = (locate_key(text, key, start) if key else None) or pos
        return fail(f"{where}: {message}", *at)

    if not name.strip() or len(name) > 100:
        raise error("a server name is 1 to 100 characters.")
    if not isinstance(entry, dict):
        raise error("a server's settings must be an object with command or url.")

    def string(key: str) -> str:
        value = entry.get(key, "")
        if value is None:
            return ""
        if not isinstance(value, str):
            raise error(f"{key} must be a string.", key)
        return value.strip()

    def mapping(key: str) -> dict[str, str]:
        value = entry.get(key) or {}
        if not isinstance(value, dict):
            raise error(f"{key} must be an object of names to strings.", key)
        out = {}
        for k, v in value.items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            if isinstance(v, int | float):
                v = str(v)
            if not isinstance(v, str):
                raise error(f"{key}.{k} must be a string.", k)
            out[k] = v
        return out

    command, url, kind = string("command"), string("url"), string("type").lower()
    raw_args = entry.get("args") or []
    if not isinstance(raw_args, list) or not all(isinstance(a, str | int | float) for a in raw_args):
        raise error("args must be a list of strings.", "args")
    args = [str(a) for a in raw_args]
    env, headers = mapping("env"), mapping("headers")

    if kind:
        if kind not in TRANSPORTS:
            raise error(f"unknown type {kind!r}; expected stdio, http or sse.", "type")
        transport = TRANSPORTS[kind]
    elif command and url:
        raise error("has both command and url; say which with type.", "url")
    elif command:
        transport = Tool.Transport.STDIO
    elif url:
        transport = Tool.Transport.SSE if urlsplit(url).path.rstrip("/").endswith("/sse") else Tool.Transport.HTTP
    else:
        raise error("has neither command (a local stdio server) nor url (a remote server).")
    if transport == Tool.Transport.STDIO and not command:
        raise error("a stdio server needs a command.", "type")
    if transport != Tool.Transport.STDIO and not url:
        raise error(f"an {transport} server needs a url.", "type")
    if len(command) > 500 or len(url) > 1000:
        raise error("command or url is too long.")

    for key in env:
        if not ENV_NAME.match(key):
            raise error(
                "env: each key must be an environment variable name (letters, digits and _, not starting "
                "with a digit).",
                key,
            )
    secrets = SecretScanner()
    for key, value in env.items():
        secrets.value(f"env.{key}", key, value)
    for key, value in headers.items():
        secrets.value(f"headers.{key}", key, value)
    stored_url = secrets.url("url", url) if url else ""
    stored_args = secrets.args(args)
    stored_command = secrets.text("command", command) if command else ""

    return McpServer(
        name=name,
        line=line,
        transport=transport,
        command=stored_command,
        args=tuple(stored_args),
        url=stored_url,
        env_keys=tuple(env),
        access_levels=tuple(_access_levels(args, env, url)),
        destination=_destination(transport, url),
        secrets=tuple(sorted(set(secrets.hits), key=lambda h: h.location)),
    )


def _truthy(value: str | None) -> bool:
    return value is None or value.strip().lower() in ("", "1", "true", "yes", "on")


def _access_levels(args: list[str], env: dict[str, str], url: str) -> list[str]:
    """``["read"]`` when the configuration asks for read-only; otherwise read, write and execute."""
    read_only = None
    for i, arg in enumerate(args):
        m = re.fullmatch(r"(?:--?)?(read[-_]?only)(?:=(.*))?", arg.strip(), re.IGNORECASE)
        if not m:
            continue
        value = m.group(2)
        if value is None and i + 1 < len(args) and args[i + 1].lower() in ("true", "false"):
            value = args[i + 1]
        read_only = _truthy(value)
    for key, value in env.items():
        if re.fullmatch(r"(?:\w+_)?READ_?ONLY(?:_MODE)?", key, re.IGNORECASE):
            read_only = _truthy(value) and bool(value.strip())
    if url:
        for key, value in parse_qsl(urlsplit(url).query):
            if re.fullmatch(r"read[-_]?only", key, re.IGNORECASE):
                read_only = _truthy(value)
    return [AccessLevel.READ] if read_only else list(BROAD_ACCESS)


def _expand_host_url(url: str) -> str | None:
    """The URL with ``${VAR:-default}`` replaced by its default; None while a bare reference remains."""
    expanded = re.sub(r"\$\{[^}:]+:-([^}]*)\}", r"\1", url)
    return None if "${" in expanded or "$" in expanded.split("?")[0] else expanded


def is_internal_host(host: str) -> bool:
    """True for localhost, loopback/private/link-local addresses, single-label names, internal suffixes,
    and names with an internal label (``db.internal.example.com``)."""
    host = host.lower().strip("[]").rstrip(".")
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        labels = host.split(".")
        return len(labels) == 1 or host.endswith(INTERNAL_SUFFIXES) or bool(INTERNAL_LABELS & set(labels[:-1]))
    return ip.is_private or ip.is_loopback or ip.is_link_local


def _destination(transport: str, url: str) -> str:
    if transport == Tool.Transport.STDIO:
        return Tool.Destination.INTERNAL
    expanded = _expand_host_url(url)
    try:
        host = urlsplit(expanded).hostname if expanded else None
    except ValueError:
        host = None
    return Tool.Destination.INTERNAL if host and is_internal_host(host) else Tool.Destination.EXTERNAL


# --- apply (one transaction, audited) -------------------------------------------------------

COMPARED = ("transport", "command", "args", "url", "env_keys", "access_levels", "destination", "source")
TOOL_SNAPSHOT = ("agent", "name", *COMPARED)
REMOVED_SNAPSHOT = (*TOOL_SNAPSHOT, "data_classes")


def _wanted(server: McpServer, source: str) -> dict:
    return {
        "transport": server.transport,
        "command": server.command,
        "args": list(server.args),
        "url": server.url,
        "env_keys": list(server.env_keys),
        "access_levels": list(server.access_levels),
        "destination": server.destination,
        "source": source,
    }


def _clean(tool: Tool, line: int) -> None:
    try:
        # The agent is locked by the caller and names are unique within the file: checking the
        # foreign key, uniqueness and constraints tool by tool would cost queries per server.
        tool.full_clean(exclude=["agent"], validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        messages = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        raise fail(f"server {tool.name!r}: {messages}", line, 1)


def apply(config: McpConfig, *, actor: Actor, agent: Agent, filename: str, now: datetime) -> dict[str, int]:
    """Write a parsed configuration as ``agent``'s tools; call inside a transaction with the agent locked.

    New servers become tools (``bulk_create``), changed ones are updated, unchanged ones are left
    alone; tools that came from a file of the same name (``source``) and that this file no longer
    lists are removed (``tool.remove``), their unresolved findings resolved with a note. One audit
    event per change (``audit_record_many``). Each listed tool's literal-secret finding is
    opened, kept (same secrets), replaced (different secrets) or resolved (none left); new ones
    are opened in one set-based pass (``findings_sync``); only tools whose secrets changed or that
    are removed cost queries each.

    Returns the counts of what it did (``tools_removed`` and ``removed_tool_findings_resolved``
    count the removals). Raises ``ImportFailed`` if a tool fails validation.
    """
    source = os.path.basename(filename or "")[:200]
    counts = dict.fromkeys(
        (
            "servers",
            "tools_created",
            "tools_updated",
            "tools_unchanged",
            "tools_removed",
            "removed_tool_findings_resolved",
            "secrets_found",
            "secret_findings_opened",
            "secret_findings_resolved",
        ),
        0,
    )
    counts["servers"] = len(config.servers)
    listed = {s.name for s in config.servers}
    lookup = Q(name__in=listed)
    if source:  # a tool with no source was registered by hand; a nameless upload removes nothing
        lookup |= Q(source=source)
    known = {t.name: t for t in Tool.objects.select_for_update().filter(lookup, agent=agent).order_by("name")}
    existing = {name: t for name, t in known.items() if name in listed}
    counts["tools_removed"], counts["removed_tool_findings_resolved"] = _remove(
        [t for name, t in known.items() if name not in listed], actor=actor, source=source, now=now
    )
    events: list[PendingEvent] = []
    to_create: list[Tool] = []
    to_update: list[Tool] = []
    update_fields: set[str] = set()
    for server in config.servers:
        wanted = _wanted(server, source)
        tool = existing.get(server.name)
        if tool is None:
            tool = Tool(agent=agent, name=server.name, data_classes=[], created_at=now, updated_at=now, **wanted)
            _clean(tool, server.line)
            to_create.append(tool)
            continue
        changed = {k: v for k, v in wanted.items() if getattr(tool, k) != v}
        if not changed:
            counts["tools_unchanged"] += 1
            continue
        before = snapshot(tool, changed)
        for k, v in changed.items():
            setattr(tool, k, v)
        tool.updated_at = now
        _clean(tool, server.line)
        to_update.append(tool)
        update_fields.update(changed)
        events.append(
            PendingEvent(
                "tool.update",
                object_type_of(tool),
                str(tool.pk),
                str(tool)[:300],
                before=before,
                after=snapshot(tool, changed),
            )
        )
    created = Tool.objects.bulk_create(to_create)
    if any(t.pk is None for t in created):  # backends that do not return ids
        ids = dict(Tool.objects.filter(agent=agent, name__in=[t.name for t in created]).values_list("name", "pk"))
        for t in created:
            t.pk = ids[t.name]
    events.extend(
        PendingEvent("tool.add", object_type_of(t), str(t.pk), str(t)[:300], after=snapshot(t, TOOL_SNAPSHOT))
        for t in created
    )
    if to_update:
        Tool.objects.bulk_update(to_update, sorted(update_fields | {"updated_at"}))
    counts["tools_created"], counts["tools_updated"] = len(created), len(to_update)
    if events:
        audit_record_many(actor=actor, events=events, at=now)

    tools = {**existing, **{t.name: t for t in created}}
    tool_ct = ContentType.objects.get_for_model(Tool)
    open_findings = {
        f.subject_id: f
        for f in Finding.objects.select_for_update().filter(
            kind=FINDING_KIND,
            subject_type=tool_ct,
            subject_id__in=[t.pk for t in tools.values()],
            status__in=Finding.UNRESOLVED,
        )
    }
    holding: list[Condition] = []
    for server in config.servers:
        tool = tools[server.name]
        counts["secrets_found"] += len(server.secrets)
        secrets = [{"location": h.location, "kind": h.kind, "fingerprint": h.fingerprint} for h in server.secrets]
        current = open_findings.get(tool.pk)
        if current is not None and (not secrets or current.evidence.get("secrets") != secrets):
            if not secrets:
                note = "Literal secret removed from the configuration."
            elif any(
                not str(s.get("fingerprint", "")).startswith("hmac-") for s in current.evidence.get("secrets", [])
            ):
                note = "Replaced by a finding with keyed (HMAC-SHA256) fingerprints; see the new finding."
            else:
                note = "The configuration's literal secrets changed; see the new finding."
            counts["secret_findings_resolved"] += findings_resolve_for(
                actor=actor, kind=FINDING_KIND, subject=tool, now=now, note=note
            )
        if not secrets:
            continue
        places = ", ".join(f"{s['location']} ({s['kind']}, {s['fingerprint']})" for s in secrets)
        holding.append(
            Condition(
                tool,
                agent.pk,
                evidence={"secrets": secrets, "file": source},
                detail=f"{agent.name}: server {server.name!r} in {source or 'its configuration'} "
                f"holds a literal secret at {places}.",
            )
        )
    # One set-based pass opens the findings of the tools that hold a secret and have none open,
    # refreshes the others and reopens a lapsed risk acceptance; it judges only those tools (the
    # findings of tools whose secrets went were resolved above, with their note).
    synced = findings_sync(
        actor=actor,
        kind=FINDING_KIND,
        subject_model=Tool,
        now=now,
        conditions=holding,
        scope=Q(subject_id__in=[c.subject.pk for c in holding]),
    )
    counts["secret_findings_opened"] = synced["opened"]
    return counts


def _remove(tools: list[Tool], *, actor: Actor, source: str, now: datetime) -> tuple[int, int]:
    """Remove tools the file no longer lists; resolve their unresolved findings. Returns (tools, findings)."""
    if not tools:
        return 0, 0
    by_pk = {t.pk: t for t in tools}
    unresolved = (
        Finding.objects.filter(
            subject_type=ContentType.objects.get_for_model(Tool),
            subject_id__in=list(by_pk),
            status__in=Finding.UNRESOLVED,
        )
        .order_by("subject_id", "kind")
        .values_list("subject_id", "kind")
        .distinct()
    )
    note = f"The tool was removed: {source} no longer lists it."
    resolved = sum(
        findings_resolve_for(actor=actor, kind=kind, subject=by_pk[pk], now=now, note=note) for pk, kind in unresolved
    )
    audit_record_many(
        actor=actor,
        events=[
            PendingEvent(
                "tool.remove", object_type_of(t), str(t.pk), str(t)[:300], before=snapshot(t, REMOVED_SNAPSHOT)
            )
            for t in tools
        ],
        at=now,
    )
    Tool.objects.filter(pk__in=list(by_pk)).delete()
    return len(tools), resolved


__all__ = ["FINDING_KIND", "McpConfig", "McpServer", "apply", "is_internal_host", "parse"]
