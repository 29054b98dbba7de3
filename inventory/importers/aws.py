"""AWS IAM credential report → agents, workload identities and credentials.

Accepts the raw CSV report, or the JSON that ``aws iam get-credential-report`` prints
(``Content`` = the CSV in base64, ``ReportFormat`` = ``text/csv``, ``GeneratedTime``).
Column meanings follow the IAM User Guide, "Getting credential reports for your AWS account".

- Each non-root IAM user becomes an agent (kind service account, state proposed, no owner,
  ``external_ref`` = its ARN, a workload identity of type ``aws_iam_user``) with an
  unowned-agent finding (OWASP NHI1), unless it looks like a person: a console password and
  no active access key. Such users and ``<root_account>`` are skipped and counted. An agent
  that already carries the ARN (as ``external_ref`` or workload identity) is matched and kept
  as it is: an import never changes an existing agent's owner or state.
- Access keys 1–2 and signing certificates 1–2 that exist become credentials
  (``provider="aws"``, ``external_id="<ARN>#access_key_1"`` …); a console password on an
  agent becomes a ``console_password`` credential (OWASP NHI10). AWS reports the last use of
  access keys only, so certificates and passwords have ``usage_tracked=False``.
- Usage is as of the report's ``GeneratedTime`` (or the ``observed_at`` given for a raw CSV).
  A credential is updated only from a report at least as new as the one it was last seen
  in; a changed last-rotated time is recorded as a rotation; a credential that has gone from a
  newer report (its key deleted, or its whole IAM user deleted) is marked revoked.
- AWS is the source of truth for whether a key works: a credential revoked in Warrant that a
  report generated *after* the revocation (``status_changed_at``) still lists takes the report's
  status — ``credential.reactivate`` when active, ``credential.update`` when inactive, each with
  its reason — so the stale-credential job judges it again. An older report leaves it revoked.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils.text import slugify

from governance.audit import Actor, PendingEvent, audit_record_many, object_type_of, snapshot
from governance.errors import Conflict
from governance.findings import Condition, findings_resolve_for, findings_sync

from ..models import RESERVED_AGENT_SLUGS, Agent, Credential, WorkloadIdentity
from .base import ImportFailed, decode_text, fail, locate_key, parse_timestamp

PROVIDER = "aws"
PLATFORM = "AWS IAM"
ROOT_USER = "<root_account>"
FUTURE_SKEW = timedelta(minutes=5)

BOOL_COLUMNS = (
    "password_enabled",
    "mfa_active",
    "access_key_1_active",
    "access_key_2_active",
    "cert_1_active",
    "cert_2_active",
)
# Timestamp columns and the placeholder words AWS writes in each when there is no time.
TIME_COLUMNS: dict[str, frozenset[str]] = {
    "user_creation_time": frozenset(),
    "password_last_used": frozenset({"N/A", "no_information", "not_supported"}),
    "password_last_changed": frozenset({"N/A", "not_supported"}),
    "password_next_rotation": frozenset({"N/A", "not_supported"}),
    "access_key_1_last_rotated": frozenset({"N/A"}),
    "access_key_1_last_used_date": frozenset({"N/A", "no_information"}),
    "access_key_2_last_rotated": frozenset({"N/A"}),
    "access_key_2_last_used_date": frozenset({"N/A", "no_information"}),
    "cert_1_last_rotated": frozenset({"N/A"}),
    "cert_2_last_rotated": frozenset({"N/A"}),
}
REQUIRED_COLUMNS = ("user", "arn", *TIME_COLUMNS, *BOOL_COLUMNS)
KNOWN_COLUMNS = frozenset(
    (
        *REQUIRED_COLUMNS,
        "access_key_1_last_used_region",
        "access_key_1_last_used_service",
        "access_key_2_last_used_region",
        "access_key_2_last_used_service",
    )
)
USER_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):user/(?:[\x21-\x7e]*/)?([\w+=,.@-]+)$")
ROOT_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:root$")
MAX_ARN = 280  # leaves room for "#access_key_1" in a 300-character external id

# (slot, kind, active column, last-rotated column, last-used column or None)
SLOTS = (
    (
        "access_key_1",
        Credential.Kind.ACCESS_KEY,
        "access_key_1_active",
        "access_key_1_last_rotated",
        "access_key_1_last_used_date",
    ),
    (
        "access_key_2",
        Credential.Kind.ACCESS_KEY,
        "access_key_2_active",
        "access_key_2_last_rotated",
        "access_key_2_last_used_date",
    ),
    ("cert_1", Credential.Kind.SIGNING_CERTIFICATE, "cert_1_active", "cert_1_last_rotated", None),
    ("cert_2", Credential.Kind.SIGNING_CERTIFICATE, "cert_2_active", "cert_2_last_rotated", None),
)
REACTIVATED_REASON = "Active in an AWS credential report generated after it was revoked in Warrant."
INACTIVE_AFTER_REVOKE_REASON = "Inactive in an AWS credential report generated after it was revoked in Warrant."
CONSOLE_PASSWORD_SLOT = "console_password"
ALL_SLOTS = tuple(s[0] for s in SLOTS) + (CONSOLE_PASSWORD_SLOT,)


# --- parse (no database) --------------------------------------------------------------------


@dataclass(frozen=True)
class ReportCredential:
    """One credential of an IAM user as the report shows it. Datetimes are UTC."""

    slot: str
    kind: str
    active: bool
    created_at: datetime
    last_rotated_at: datetime | None
    last_used_at: datetime | None
    usage_tracked: bool

    def external_id(self, arn: str) -> str:
        return f"{arn}#{self.slot}"


@dataclass(frozen=True)
class ReportUser:
    """One non-root IAM user (a line of the report)."""

    line: int
    name: str
    arn: str
    created_at: datetime
    password_enabled: bool
    credentials: tuple[ReportCredential, ...]

    @property
    def looks_like_person(self) -> bool:
        """A console password and no active access key: a person's login, not a workload."""
        return self.password_enabled and not any(
            c.active for c in self.credentials if c.kind == Credential.Kind.ACCESS_KEY
        )


@dataclass(frozen=True)
class CredentialReport:
    """A parsed credential report: its users, as of ``observed_at`` (UTC)."""

    format: str  # "csv" or "json"
    observed_at: datetime
    users: tuple[ReportUser, ...]
    root_rows: int


def parse(content: bytes, *, observed_at: datetime | None = None, now: datetime) -> CredentialReport:
    """Parse a credential report (raw CSV or the CLI's JSON); touches no database.

    ``observed_at`` (aware) stands for the report's generation time when the file does not
    carry one (a raw CSV); ``now`` (UTC) bounds it. Raises ``ImportFailed`` for the first
    problem, naming line and column (and the CSV column name).
    """
    if observed_at is not None and (observed_at.tzinfo is None or observed_at.utcoffset() is None):
        raise ImportFailed(
            "Give the report's generation time with a UTC offset, e.g. 2026-11-15T06:00:00+00:00.", field="observed_at"
        )
    text = decode_text(content)
    if text.lstrip().startswith(("{", "[")):
        csv_text, generated, prefix = _unwrap_json(text)
        fmt = "json"
    else:
        csv_text, generated, prefix, fmt = text, None, "", "csv"
    _check_header(csv_text, prefix)  # what the file is, before what it lacks
    if generated is None and observed_at is None:
        raise ImportFailed(
            "The report has no GeneratedTime; give observed at, the time it was generated."
            if fmt == "json"
            else "A raw credential report does not say when it was generated; give observed at, the "
            "report's generation time as ISO 8601 with a UTC offset.",
            field="observed_at",
        )
    report_time = generated or observed_at
    report_time = report_time.astimezone(now.tzinfo)
    if report_time > now + FUTURE_SKEW:
        if fmt == "json" and generated is not None:
            line, column = locate_key(text, "GeneratedTime") or (None, None)
            raise fail(f"GeneratedTime {report_time.isoformat()} is in the future.", line, column)
        raise ImportFailed(f"{report_time.isoformat()} is in the future.", field="observed_at")
    users, root_rows = _parse_csv(csv_text, report_time, prefix)
    return CredentialReport(format=fmt, observed_at=report_time, users=tuple(users), root_rows=root_rows)


def _unwrap_json(text: str) -> tuple[str, datetime | None, str]:
    """The CSV inside ``aws iam get-credential-report`` output, its GeneratedTime, a message prefix."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"Not valid JSON: {exc.msg}.", exc.lineno, exc.colno)
    if not isinstance(doc, dict):
        raise fail("Expected the JSON object printed by `aws iam get-credential-report`.", 1, 1)

    def where(key: str) -> tuple[int, int]:
        return locate_key(text, key) or (1, 1)

    if "Content" not in doc:
        raise fail("The JSON has no Content (the base64-encoded report).", 1, 1)
    fmt = doc.get("ReportFormat", "text/csv")
    if fmt != "text/csv":
        raise fail(f"ReportFormat is {fmt!r}; only text/csv reports can be imported.", *where("ReportFormat"))
    generated = None
    if doc.get("GeneratedTime") is not None:
        raw = doc["GeneratedTime"]
        try:
            generated = parse_timestamp(raw) if isinstance(raw, str) else None
        except ValueError:
            generated = None
        if generated is None:
            raise fail(
                f"GeneratedTime {raw!r} is not an ISO 8601 timestamp with a UTC offset.", *where("GeneratedTime")
            )
    content = doc["Content"]
    line, column = where("Content")
    if not isinstance(content, str):
        raise fail("Content must be a base64 string.", line, column)
    try:
        raw_csv = base64.b64decode(re.sub(r"\s+", "", content), validate=True)
    except (binascii.Error, ValueError):
        raise fail("Content is not valid base64.", line, column)
    prefix = f"Content (line {line} of the JSON), decoded "
    return decode_text(raw_csv, prefix=prefix), generated, prefix


def _read_header(reader, prefix: str) -> tuple[list[str], int]:
    """The report's header row (stripped names) and its line; raises ``ImportFailed`` unless it is
    a credential report's header. May raise ``csv.Error``."""
    header = next(reader, None)
    while header is not None and not header:
        header = next(reader, None)
    if header is None:
        raise fail("The report is empty.", 1, 1, prefix=prefix)
    header_line = reader.line_num
    header = [h.strip() for h in header]
    seen: set[str] = set()
    for i, name in enumerate(header, start=1):
        if name in seen:
            raise fail(f"The header repeats column {name!r}.", header_line, i, name, prefix=prefix)
        seen.add(name)
    missing = [c for c in REQUIRED_COLUMNS if c not in seen]
    if missing:
        unknown = [i for i, name in enumerate(header, start=1) if name not in KNOWN_COLUMNS]
        column = unknown[0] if unknown else len(header) + 1
        raise fail(
            "Not an AWS IAM credential report: the header lacks the column"
            f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}.",
            header_line,
            column,
            header[column - 1] if unknown else "",
            prefix=prefix,
        )
    return header, header_line


def _check_header(text: str, prefix: str) -> None:
    """Raise ``ImportFailed`` unless ``text`` starts with a credential report's header."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        _read_header(reader, prefix)
    except csv.Error as exc:
        raise fail(f"Not a well-formed CSV file: {exc}.", reader.line_num, 1, prefix=prefix)


def _parse_csv(text: str, report_time: datetime, prefix: str) -> tuple[list[ReportUser], int]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header, _ = _read_header(reader, prefix)
        index = {name: i for i, name in enumerate(header)}
        users: list[ReportUser] = []
        by_name: dict[str, int] = {}
        by_arn: dict[str, int] = {}
        root_rows = 0
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            line = reader.line_num
            if len(row) != len(header):
                raise fail(
                    f"{len(row)} fields where the header has {len(header)}.",
                    line,
                    min(len(row), len(header)) + 1,
                    prefix=prefix,
                )
            parsed = _parse_row(row, index, line, report_time, prefix)
            if parsed is None:
                root_rows += 1
                if root_rows > 1:
                    raise fail("A second <root_account> row.", line, index["user"] + 1, "user", prefix=prefix)
                continue
            for key, seen_at in ((parsed.name, by_name), (parsed.arn, by_arn)):
                if key in seen_at:
                    col = "user" if seen_at is by_name else "arn"
                    raise fail(
                        f"{key!r} appears again (first on line {seen_at[key]}).",
                        line,
                        index[col] + 1,
                        col,
                        prefix=prefix,
                    )
                seen_at[key] = line
            users.append(parsed)
    except csv.Error as exc:
        raise fail(f"Not a well-formed CSV file: {exc}.", reader.line_num, 1, prefix=prefix)
    return users, root_rows


class _Row:
    """Typed access to one CSV row, raising ``ImportFailed`` at the cell's position."""

    def __init__(self, row: list[str], index: dict[str, int], line: int, prefix: str):
        self.row, self.index, self.line, self.prefix = row, index, line, prefix

    def raw(self, col: str) -> str:
        return self.row[self.index[col]].strip()

    def error(self, col: str, message: str) -> ImportFailed:
        return fail(message, self.line, self.index[col] + 1, col, prefix=self.prefix)

    def boolean(self, col: str, *, allow_not_supported: bool = False) -> bool:
        value = self.raw(col)
        lowered = value.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if allow_not_supported and value == "not_supported":
            return False
        raise self.error(col, f"{value!r} is not true or false.")

    def time(self, col: str) -> datetime | None:
        value = self.raw(col)
        if value in TIME_COLUMNS[col]:
            return None
        try:
            return parse_timestamp(value)
        except ValueError:
            words = sorted(TIME_COLUMNS[col])
            also = f" or one of {', '.join(words)}" if words else ""
            if re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$", value):
                raise self.error(col, f"{value!r} has no UTC offset; timestamps must carry one (e.g. +00:00).")
            raise self.error(col, f"{value!r} is not an ISO 8601 timestamp with a UTC offset{also}.")


def _parse_row(
    row: list[str], index: dict[str, int], line: int, report_time: datetime, prefix: str
) -> ReportUser | None:
    """A ``ReportUser`` for one line, or None for the root account's line (validated all the same)."""
    r = _Row(row, index, line, prefix)
    name, arn = r.raw("user"), r.raw("arn")
    is_root = name == ROOT_USER
    if not name:
        raise r.error("user", "The user name is empty.")
    if is_root:
        if not ROOT_ARN.match(arn):
            raise r.error("arn", f"{arn!r} is not an AWS account root ARN.")
    else:
        match = USER_ARN.match(arn)
        if match is None:
            raise r.error("arn", f"{arn!r} is not an IAM user ARN (arn:aws:iam::<account>:user/<path>/<name>).")
        if match.group(2) != name:
            raise r.error("arn", f"The ARN names user {match.group(2)!r}, not {name!r}.")
        if len(arn) > MAX_ARN:
            raise r.error("arn", f"The ARN is longer than {MAX_ARN} characters.")
    bools = {col: r.boolean(col, allow_not_supported=(col == "password_enabled")) for col in BOOL_COLUMNS}
    times = {col: r.time(col) for col in TIME_COLUMNS}
    if times["user_creation_time"] is None:
        raise r.error("user_creation_time", "The user's creation time is missing.")
    for col, value in times.items():
        if value is not None and col.endswith(("_last_used", "_last_used_date")) and value > report_time:
            raise r.error(col, f"{value.isoformat()} is after the report was generated ({report_time.isoformat()}).")
    if is_root:
        return None

    created = times["user_creation_time"]
    credentials: list[ReportCredential] = []
    for slot, kind, active_col, rotated_col, used_col in SLOTS:
        rotated = times[rotated_col]
        if rotated is None:
            if bools[active_col]:
                raise r.error(active_col, f"{slot} is active but {rotated_col} is N/A.")
            continue
        credentials.append(
            ReportCredential(
                slot=slot,
                kind=kind,
                active=bools[active_col],
                created_at=rotated,
                last_rotated_at=rotated,
                last_used_at=times[used_col] if used_col else None,
                usage_tracked=used_col is not None,
            )
        )
    if bools["password_enabled"]:
        changed = times["password_last_changed"]
        credentials.append(
            ReportCredential(
                slot=CONSOLE_PASSWORD_SLOT,
                kind=Credential.Kind.CONSOLE_PASSWORD,
                active=True,
                created_at=changed or created,
                last_rotated_at=changed,
                last_used_at=times["password_last_used"],
                usage_tracked=False,
            )
        )
    return ReportUser(
        line=line,
        name=name,
        arn=arn,
        created_at=created,
        password_enabled=bools["password_enabled"],
        credentials=tuple(credentials),
    )


# --- apply (one transaction, audited) -------------------------------------------------------

CREDENTIAL_SNAPSHOT = (
    "agent",
    "kind",
    "provider",
    "external_id",
    "created_at",
    "last_rotated_at",
    "last_used_at",
    "usage_tracked",
    "observed_at",
    "status",
)
AGENT_SNAPSHOT = (
    "slug",
    "name",
    "purpose",
    "kind",
    "platform",
    "environment",
    "owner",
    "state",
    "source",
    "external_ref",
)


def _event(verb: str, obj, *, before: dict | None = None, after: dict | None = None) -> PendingEvent:
    return PendingEvent(verb, object_type_of(obj), str(obj.pk), str(obj)[:300], before=before, after=after)


def _clean(obj, line: int) -> None:
    try:
        # Uniqueness, constraints and foreign keys are the importer's own bookkeeping (and the
        # database's); checking them row by row would cost a query per field.
        fks = [f.name for f in obj._meta.concrete_fields if f.is_relation]
        obj.full_clean(exclude=fks, validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        messages = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        raise fail(messages, line, 1)


def apply(report: CredentialReport, *, actor: Actor, now: datetime) -> dict[str, int]:
    """Write a parsed report: call inside a transaction; returns the counts of what it did.

    Creates agents, workload identities and credentials (``bulk_create``), updates credentials
    from a report at least as new as they are, records rotations and revocations, raises an
    unowned-agent finding for each ownerless agent, and writes one audit event per change
    (``audit_record_many``). A second run on the same report writes nothing to the inventory.
    Raises ``Conflict`` when the inventory binds one ARN to two agents.
    """
    counts = dict.fromkeys(
        (
            "users",
            "agents_created",
            "agents_matched",
            "people_skipped",
            "root_skipped",
            "identities_added",
            "credentials_created",
            "credentials_updated",
            "credentials_rotated",
            "credentials_revoked",
            "credentials_reactivated",
            "credentials_unrevoked_inactive",
            "credentials_unchanged",
            "credentials_older_report",
            "unowned_findings_opened",
        ),
        0,
    )
    counts["users"] = len(report.users)
    counts["root_skipped"] = report.root_rows
    arns = [u.arn for u in report.users]
    agents = _match_agents(report.users, arns)
    events: list[PendingEvent] = []

    # Agents.
    taken_slugs = set(
        Agent.objects.filter(slug__in=[_slug_base(u.name) for u in report.users]).values_list("slug", flat=True)
    )
    new_agents: list[tuple[ReportUser, Agent]] = []
    for user in report.users:
        agent = agents.get(user.arn)
        if agent is not None:
            counts["agents_matched"] += 1
            continue
        if user.looks_like_person:
            counts["people_skipped"] += 1
            continue
        slug = _free_slug(_slug_base(user.name), taken_slugs)
        agent = Agent(
            slug=slug,
            name=user.name,
            kind=Agent.Kind.SERVICE_ACCOUNT,
            platform=PLATFORM,
            purpose=f"IAM user found in an AWS IAM credential report ({user.arn}).",
            state=Agent.State.PROPOSED,
            state_changed_at=now,
            source=Agent.Source.AWS_CREDENTIAL_REPORT,
            external_ref=user.arn,
            created_at=now,
            updated_at=now,
        )
        _clean(agent, user.line)
        new_agents.append((user, agent))
    created_agents = Agent.objects.bulk_create([a for _, a in new_agents])
    if any(a.pk is None for a in created_agents):  # backends that do not return ids
        ids = dict(
            Agent.objects.filter(external_ref__in=[a.external_ref for a in created_agents]).values_list(
                "external_ref", "pk"
            )
        )
        for a in created_agents:
            a.pk = ids[a.external_ref]
    for user, agent in new_agents:
        agents[user.arn] = agent
        events.append(_event("agent.import", agent, after=snapshot(agent, AGENT_SNAPSHOT)))
    counts["agents_created"] = len(new_agents)

    # Workload identities: one aws_iam_user identity per agent, its ARN.
    have_identity = set(
        WorkloadIdentity.objects.filter(
            type=WorkloadIdentity.Type.AWS_IAM_USER, issuer="", identifier__in=arns
        ).values_list("identifier", flat=True)
    )
    new_identities = [
        WorkloadIdentity(agent=agents[u.arn], type=WorkloadIdentity.Type.AWS_IAM_USER, identifier=u.arn, created_at=now)
        for u in report.users
        if u.arn in agents and u.arn not in have_identity and agents[u.arn].state != Agent.State.DECOMMISSIONED
    ]
    for identity in WorkloadIdentity.objects.bulk_create(new_identities):
        events.append(
            _event(
                "workload_identity.add", identity, after=snapshot(identity, ("agent", "type", "issuer", "identifier"))
            )
        )
    counts["identities_added"] = len(new_identities)

    # Credentials.
    existing = {
        c.external_id: c
        for c in Credential.objects.select_for_update().filter(
            provider=PROVIDER, external_id__in=[f"{arn}#{slot}" for arn in agents for slot in ALL_SLOTS]
        )
    }
    to_create: list[Credential] = []
    to_update: list[Credential] = []
    update_fields: set[str] = set()
    rotated: list[Credential] = []
    revoked: list[Credential] = []

    def revoke(current: Credential, reason: str) -> None:
        """Mark a credential the report shows gone (deleted at AWS) revoked, as of the report."""
        before = snapshot(current, ("status", "observed_at"))
        current.status = Credential.Status.REVOKED
        current.status_changed_at = now
        current.observed_at = report.observed_at
        revoked.append(current)
        after = {**snapshot(current, ("status", "observed_at")), "reason": reason}
        events.append(_event("credential.revoke", current, before=before, after=after))

    for user in report.users:
        agent = agents.get(user.arn)
        if agent is None:
            continue
        in_report = set()
        for rc in user.credentials:
            external_id = rc.external_id(user.arn)
            in_report.add(external_id)
            status = Credential.Status.ACTIVE if rc.active else Credential.Status.INACTIVE
            current = existing.get(external_id)
            if current is None:
                credential = Credential(
                    agent=agent,
                    kind=rc.kind,
                    provider=PROVIDER,
                    external_id=external_id,
                    label=f"{user.name} {rc.slot.replace('_', ' ')}",
                    created_at=rc.created_at,
                    last_rotated_at=rc.last_rotated_at,
                    last_used_at=rc.last_used_at,
                    usage_tracked=rc.usage_tracked,
                    observed_at=report.observed_at,
                    status=status,
                    status_changed_at=now,
                    recorded_at=now,
                )
                _clean(credential, user.line)
                to_create.append(credential)
                continue
            if report.observed_at < current.observed_at:
                counts["credentials_older_report"] += 1
                continue
            wanted = {
                "last_used_at": rc.last_used_at,
                "usage_tracked": rc.usage_tracked,
                "observed_at": report.observed_at,
                "last_rotated_at": rc.last_rotated_at,
            }
            # The provider decides whether a key works: a credential revoked in Warrant takes the
            # status of a report generated after that revocation, and keeps "revoked" otherwise.
            if current.status != Credential.Status.REVOKED or report.observed_at > current.status_changed_at:
                wanted["status"] = status
            changed = {k: v for k, v in wanted.items() if getattr(current, k) != v}
            if not changed:
                counts["credentials_unchanged"] += 1
                continue
            fields = tuple(changed)
            before = snapshot(current, fields)
            was_revoked = "status" in changed and current.status == Credential.Status.REVOKED
            for k, v in changed.items():
                setattr(current, k, v)
            if "status" in changed:
                current.status_changed_at = now
            _clean(current, user.line)
            to_update.append(current)
            update_fields.update(changed)
            if "status" in changed:
                update_fields.add("status_changed_at")
            rest = fields
            if "last_rotated_at" in changed:
                rotated.append(current)
                counts["credentials_rotated"] += 1
                rest = tuple(f for f in rest if f != "last_rotated_at")
                events.append(
                    _event(
                        "credential.rotate",
                        current,
                        before={"last_rotated_at": before["last_rotated_at"]},
                        after=snapshot(current, ("last_rotated_at",)),
                    )
                )
            extra = {}
            if was_revoked:
                counts["credentials_reactivated" if rc.active else "credentials_unrevoked_inactive"] += 1
                if rc.active:
                    rest = tuple(f for f in rest if f != "status")
                    events.append(
                        _event(
                            "credential.reactivate",
                            current,
                            before={"status": before["status"]},
                            after={**snapshot(current, ("status",)), "reason": REACTIVATED_REASON},
                        )
                    )
                else:
                    extra = {"reason": INACTIVE_AFTER_REVOKE_REASON}
            if rest:
                events.append(
                    _event(
                        "credential.update",
                        current,
                        before={k: before[k] for k in rest},
                        after={**snapshot(current, rest), **extra},
                    )
                )
        # Credentials that a report at least as new no longer shows were deleted at AWS.
        for slot in ALL_SLOTS:
            current = existing.get(f"{user.arn}#{slot}")
            if (
                current is None
                or current.external_id in in_report
                or current.status == Credential.Status.REVOKED
                or report.observed_at < current.observed_at
            ):
                continue
            revoke(current, "No longer in the AWS credential report.")
    # A credential report lists every IAM user of its account: a user it no longer lists, in a
    # report at least as new as what Warrant holds, was deleted at AWS with all its credentials.
    accounts = {_account_of(arn) for arn in arns} - {""}
    reported = set(arns)
    for account in sorted(accounts):
        gone = (
            Credential.objects.select_for_update()
            .filter(
                provider=PROVIDER,
                external_id__startswith=f"arn:aws:iam::{account}:",
                observed_at__lte=report.observed_at,
            )
            .exclude(status=Credential.Status.REVOKED)
            .order_by("id")
        )
        for current in gone:
            if current.external_id.split("#", 1)[0] in reported:
                continue
            revoke(current, "Its IAM user is no longer in the AWS credential report.")
    created_credentials = Credential.objects.bulk_create(to_create)
    events.extend(_event("credential.record", c, after=snapshot(c, CREDENTIAL_SNAPSHOT)) for c in created_credentials)
    if to_update:
        Credential.objects.bulk_update(to_update, sorted(update_fields))
    if revoked:
        Credential.objects.bulk_update(revoked, ["status", "status_changed_at", "observed_at"])
    counts["credentials_created"] = len(created_credentials)
    counts["credentials_updated"] = len(to_update)
    counts["credentials_revoked"] = len(revoked)
    if events:
        audit_record_many(actor=actor, events=events, at=now)

    # Findings: the ones a change clears, then one unowned-agent finding per ownerless agent.
    for credential in rotated:
        for kind in ("unrotated_credential", "expiring_credential", "expired_credential_active"):
            findings_resolve_for(actor=actor, kind=kind, subject=credential, now=now, note="Credential rotated.")
    for credential in revoked:
        findings_resolve_for(actor=actor, subject=credential, now=now, note="Credential revoked.")
    # One set-based pass over the report's agents: ownerless ones carry an unowned-agent finding.
    ownerless = [
        Condition(a, a.pk, detail=f"{a.name} was found in an AWS IAM credential report ({arn}) and has no owner yet.")
        for arn, a in agents.items()
        if a.owner_id is None and a.state != Agent.State.DECOMMISSIONED
    ]
    synced = findings_sync(
        actor=actor,
        kind="unowned_agent",
        subject_model=Agent,
        now=now,
        conditions=ownerless,
        scope=Q(subject_id__in=[a.pk for a in agents.values()]),
    )
    counts["unowned_findings_opened"] = synced["opened"]
    return counts


def _account_of(arn: str) -> str:
    """The AWS account id of an IAM ARN (``arn:aws:iam::123456789012:user/x`` → ``123456789012``), or ""."""
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[2] == "iam" else ""


def _match_agents(users: tuple[ReportUser, ...], arns: list[str]) -> dict[str, Agent]:
    """Agents that already carry a report user's ARN, by external ref or workload identity; locked."""
    found = {a.external_ref: a for a in Agent.objects.select_for_update().filter(external_ref__in=arns)}
    by_identity = dict(
        WorkloadIdentity.objects.filter(
            type=WorkloadIdentity.Type.AWS_IAM_USER, issuer="", identifier__in=arns
        ).values_list("identifier", "agent_id")
    )
    missing_ids = {aid for arn, aid in by_identity.items() if arn not in found}
    others = {a.pk: a for a in Agent.objects.select_for_update().filter(pk__in=missing_ids)}
    line_of = {u.arn: u.line for u in users}
    for arn, agent_id in by_identity.items():
        if arn in found:
            if found[arn].pk != agent_id:
                raise Conflict(
                    f"Line {line_of[arn]}: {arn} is the external reference of agent {found[arn].slug} "
                    "but the workload identity of another agent; resolve that before importing."
                )
            continue
        found[arn] = others[agent_id]
    return found


def _slug_base(name: str) -> str:
    return slugify(name)[:90] or "aws-iam-user"


def _free_slug(base: str, taken: set[str]) -> str:
    """``base``, or ``base-2``, ``base-3`` … whichever no agent has (``taken`` holds the known ones)."""
    slug, n = base, 2
    while slug in taken or slug in RESERVED_AGENT_SLUGS or (slug != base and Agent.objects.filter(slug=slug).exists()):
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug
