"""Audit a batch's journal: is the record of money intact, and does the rows table agree with it?

Three checks, none of which writes (the journal is opened read-only, without its lock):

1. The hash chain. Each event's hash covers its content and the hash of the event before it
   (`journal.event_hash`). The first event whose stored hash or link does not match, or whose id
   is missing from the sequence, is named: it, or the one before it, was altered or removed.
2. Who: the batch-level events record who prepared the plan, who approved it, who started runs,
   who asked a run to stop, and who was shown which card code, each with when.
3. The rows table against the events. Every change of a row was an event that carries the fields
   it set (`data`), so replaying the events rebuilds each row's state, order id, debited amount,
   card hashes...; a row edited in the table, or added to it, disagrees with that replay.

A journal's rows move to new positions when a batch is run again with an edited sheet, and the
journal records no event for that move; the replay places such a row by the state its next event
starts from (and the row the table holds at that position), so a moved row is not taken for an
edit.

Its sentences are in the reader's language; what it quotes from the journal (an event's detail,
a state, a field) stays as the journal wrote it.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .batchfile import batch_path
from .errors import UsageError
from .i18n import _, listed
from .journal import GENESIS, event_hash
from .refs import canonical_json

SENT_STATES = {"SENDING", "SUBMITTED", "FULFILLED", "REFUNDED", "PARTIALLY_FILLED", "REJECTED",
               "UNCERTAIN", "UNKNOWN_ERROR", "QUEUED"}  # fmt: skip
_NOT_COMPARED = {"ref", "kind", "row", "payload_hash"}  # checked apart, or moved by design
#: The batch-level events that say what a person did (their `what`, as the journal keeps it).
PEOPLE_EVENTS = ("plan prepared", "plan approved", "run started", "stop asked",
                 "card code revealed", "card codes revealed")  # fmt: skip


@dataclass(frozen=True)
class Break:
    """The first place the chain does not hold."""

    event_id: int
    at: str | None
    says: str  # what the event says now
    why: str


@dataclass
class Who:
    what: str  # one of PEOPLE_EVENTS
    who: str
    at: str
    detail: str


@dataclass
class AuditReport:
    batch: str
    path: Path
    events: int = 0
    head: str = GENESIS  # the last event's hash: note it elsewhere to detect a cut-off tail
    chain_break: Break | None = None
    broken_events: int = 0
    people: list[Who] = field(default_factory=list)
    per_state: dict[str, dict[str, float]] = field(default_factory=dict)  # rows, debited
    sent: int = 0  # rows the events show sent at least once
    disagreements: list[str] = field(default_factory=list)
    head_missing: str | None = None  # a head noted earlier that the chain no longer holds

    @property
    def intact(self) -> bool:
        return self.chain_break is None and not self.disagreements and not self.head_missing


@dataclass
class _Record:
    """A row as the events built it."""

    key: str
    ref: str | None
    kind: str | None
    state: str
    payload_hash: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    sent: bool = False


def audit_batch(state_dir: Path, batch: str, expect_head: str | None = None) -> AuditReport:
    """Verify the chain and the rows of `batch`; with `expect_head` (a chain head noted earlier,
    e.g. from a notification, at least 8 hex digits), also that the chain still holds it, which
    shows events cut off the end. Raises UsageError for an unknown batch or a malformed head.

    One pass over the events and one over the rows, read from cursors: a 100,000-row batch is
    never all in memory, only each row's replayed record."""
    if expect_head is not None and not re.fullmatch(r"[0-9a-fA-F]{8,64}", expect_head):
        raise UsageError(
            _("{head!r} is not a chain head: give 8 to 64 hex digits").format(head=expect_head)
        )
    path = batch_path(state_dir, batch)
    if not path.exists():
        raise UsageError(
            _(
                "there is no batch {batch!r} in {state_dir} (bulk-topup batches lists them; "
                "--state-dir says where to look)"
            ).format(batch=batch, state_dir=state_dir)
        )
    report = AuditReport(batch, path)
    replay: _Replay | None = None
    db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version < 3:
            raise UsageError(
                _(
                    "the journal of {batch!r} predates the hash chain (journal version "
                    "{version}); any command that opens it (bulk-topup status) chains its events "
                    "first"
                ).format(batch=batch, version=version)
            )
        layout = {
            i: (ref, row) for i, ref, row in db.execute("SELECT idx, ref, sheet_row FROM rows")
        }
        chain, replay = _Chain(report), _Replay(report, {i: ref for i, (ref, _) in layout.items()})
        head_seen = expect_head is None
        for event in db.execute("SELECT * FROM events ORDER BY id"):
            e = dict(event)
            report.events += 1
            chain.step(e)
            head_seen = head_seen or (e["hash"] or "").startswith(str(expect_head).lower())
            _person(e, report)
            replay.step(e)
        if not head_seen:
            report.head_missing = str(expect_head).lower()
        if chain.first is not None:
            sheet_rows = {i: row for i, (_, row) in layout.items()}
            first, why = chain.first
            report.chain_break = Break(first["id"], first["at"], describe_event(first, sheet_rows),
                                       why)  # fmt: skip
        _compare(replay.records, (dict(r) for r in db.execute("SELECT * FROM rows ORDER BY idx")),
                 report)  # fmt: skip
    except sqlite3.Error as e:
        raise UsageError(
            _("{path} cannot be read as a journal ({reason})").format(path=path, reason=e)
        ) from None
    finally:
        db.close()
    for rec in replay.records.values():
        entry = report.per_state.setdefault(rec.state, {"rows": 0, "debited": 0.0})
        entry["rows"] += 1
        entry["debited"] = round(entry["debited"] + _number(rec.fields.get("debited")), 2)
        report.sent += rec.sent
    return report


def describe_event(e: dict[str, Any], sheet_rows: dict[int, int | None] | None = None) -> str:
    """An event in words: where, which change, what it says."""
    where = _("batch")
    if e.get("idx") is not None:
        row = (sheet_rows or {}).get(e["idx"])
        where = (
            _("row position {idx} (sheet row {row} today)").format(idx=e["idx"], row=row)
            if row
            else _("row position {idx}").format(idx=e["idx"])
        )
    move = f" {e.get('from_state') or '-'} -> {e.get('to_state')}" if e.get("to_state") else ""
    detail = f' "{e["detail"]}"' if e.get("detail") else ""  # the journal's words, as written
    actor = _(" by {actor}").format(actor=e["actor"]) if e.get("actor") else ""
    return f"{where}:{move}{detail}{actor}"


class _Chain:
    """Checks each event's link and hash as the events go by; keeps the first that fails."""

    def __init__(self, report: AuditReport) -> None:
        self.report = report
        self.prev, self.expected_id = GENESIS, 1
        self.first: tuple[dict[str, Any], str] | None = None

    def step(self, e: dict[str, Any]) -> None:
        why = None
        if e["id"] != self.expected_id:
            why = (
                _("event {id} is missing before it: removed from the log").format(
                    id=self.expected_id
                )
                if e["id"] == self.expected_id + 1
                else _("event {first} to {last} is missing before it: removed from the log")
                .format(first=self.expected_id, last=e["id"] - 1)
            )  # fmt: skip
        elif e["prev_hash"] != self.prev:
            why = _(
                "its link to the event before it does not match: an event before it was altered"
            )
        else:
            digest = event_hash(
                self.prev, e["id"], e["idx"], e["at"], e["from_state"], e["to_state"],
                e["detail"], e["data"], e["actor"],
            )  # fmt: skip
            if digest != e["hash"]:
                why = _("its content does not match its hash: it was altered after it was written")
        if why:
            self.report.broken_events += 1
            if self.first is None:
                self.first = (e, why)
        self.prev, self.expected_id = e["hash"], e["id"] + 1
        self.report.head = self.prev


def _data(e: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(e["data"]) if e.get("data") else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _person(e: dict[str, Any], report: AuditReport) -> None:
    if e["idx"] is not None:
        return
    data = _data(e)
    what = data.get("what")
    if what in PEOPLE_EVENTS:
        who = data.get("prepared_by") or data.get("approver") or data.get("run_by")
        when = data.get("prepared_at") or data.get("signed_at") or e["at"]
        report.people.append(Who(what, str(who or e["actor"]), str(when), e["detail"] or ""))


def _is_from_sheet(e: dict[str, Any]) -> bool:
    return e["idx"] is not None and e["from_state"] is None and e["to_state"] in (
        "PLANNED", "INVALID")  # fmt: skip


class _Replay:
    """Rows as the events build them, keyed by ref (or by the event that made an invalid row)."""

    def __init__(self, report: AuditReport, table_ref: dict[int, Any]) -> None:
        self.report = report
        self.table_ref = table_ref
        self.records: dict[str, _Record] = {}
        self.at_idx: dict[int, str] = {}  # position -> record key, since the last sheet load
        self.placed: dict[str, int] = {}  # record key -> position (the reverse)
        self.group: str | None = None  # the time of the sheet load being read
        self.previous_was_sheet = False

    def step(self, e: dict[str, Any]) -> None:
        if e["idx"] is None:
            self.previous_was_sheet = False
            return
        data = _data(e)
        if _is_from_sheet(e):
            if not (self.previous_was_sheet and e["at"] == self.group):
                # A new load of the sheet: rows never sent are replaced, sent rows are kept and
                # may move to other positions (without an event).
                self.records = {k: r for k, r in self.records.items()
                                if r.state not in ("PLANNED", "INVALID")}  # fmt: skip
                self.at_idx, self.placed, self.group = {}, {}, e["at"]
            ref = data.get("ref")
            key = (ref or f"invalid@{e['id']}") if data else f"position {e['idx']}"
            self.records[key] = _Record(key, ref, data.get("kind"), e["to_state"],
                                        data.get("payload_hash"))  # fmt: skip
            self._bind(e["idx"], key)
            self.previous_was_sheet = True
            return
        self.previous_was_sheet = False
        rec = self._place(e)
        if rec is None:
            self.report.disagreements.append(
                _("event {id} ({event}) changes a row the events never created").format(
                    id=e["id"], event=describe_event(e)
                )
            )
            return
        if e["from_state"] != rec.state:
            self.report.disagreements.append(
                _(
                    "event {id} moves {row} from {frm}, but the events before it left it {state}"
                ).format(id=e["id"], row=_name(rec), frm=e["from_state"], state=rec.state)
            )
        rec.state = e["to_state"] or rec.state
        rec.sent = rec.sent or rec.state in SENT_STATES
        rec.fields.update(data)

    def _bind(self, idx: int, key: str) -> None:
        old = self.at_idx.get(idx)
        if old is not None and self.placed.get(old) == idx:
            del self.placed[old]
        self.at_idx[idx] = key
        self.placed[key] = idx

    def _place(self, e: dict[str, Any]) -> _Record | None:
        """The record an event at a row position belongs to (see the module docstring)."""
        records = self.records
        idx, state = e["idx"], e["from_state"]
        bound = self.at_idx.get(idx)
        if bound is not None and records.get(bound) and records[bound].state == state:
            return records[bound]
        hint = self.table_ref.get(idx)
        if hint in records and records[hint].state == state and self.placed.get(hint, idx) == idx:
            self._bind(idx, hint)
            return records[hint]
        # Rare (a row moved by an earlier sheet load): the one unplaced row in that state.
        free = [k for k, r in records.items() if k not in self.placed and r.state == state]
        if len(free) == 1:
            self._bind(idx, free[0])
            return records[free[0]]
        return records.get(bound) if bound is not None else None


def _name(rec: _Record) -> str:
    return f"ref {rec.ref}" if rec.ref else rec.key


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _same(field_name: str, replayed: Any, stored: Any) -> bool:
    if isinstance(replayed, dict) and set(replayed) == {"sha256"}:  # card codes: their hash only
        if stored is None:
            return False
        value = json.loads(stored) if field_name == "cards" else stored
        return hashlib.sha256(canonical_json(value)).hexdigest() == replayed["sha256"]
    if field_name in ("payload", "suggested", "cards") and isinstance(stored, str):
        try:
            stored = json.loads(stored)
        except ValueError:
            return False
    if isinstance(replayed, int | float) and isinstance(stored, int | float):
        return abs(float(replayed) - float(stored)) < 0.005
    if field_name in ("suggested", "cards") and replayed in (None, []) and stored in (None, []):
        return True
    return bool(replayed == stored)


def _compare(
    records: dict[str, _Record], rows: Iterable[dict[str, Any]], report: AuditReport
) -> None:
    seen: set[str] = set()
    for row in rows:
        where = (
            _("row {row}").format(row=row["sheet_row"])
            if row["sheet_row"]
            else _("position {idx}").format(idx=row["idx"])
        )
        name = _("{where} (ref {ref})").format(where=where, ref=row["ref"]) if row["ref"] else where
        rec: _Record | None = records.get(row["ref"]) if row["ref"] else None
        if rec is None and not row["ref"]:
            rec = next(
                (r for r in records.values() if r.ref is None and r.key not in seen
                 and r.state == row["state"]), None)  # fmt: skip
        if rec is None:
            report.disagreements.append(
                _("{row} is in the rows table but no event created it").format(row=name)
            )
            continue
        seen.add(rec.key)
        problems = []
        if row["state"] != rec.state:
            problems.append(
                _("state {table} in the table, {events} in the events").format(
                    table=row["state"], events=rec.state
                )
            )
        if rec.kind and row["kind"] != rec.kind:
            problems.append(
                _("kind {table} in the table, {events} in the events").format(
                    table=row["kind"], events=rec.kind
                )
            )
        if rec.payload_hash and row["payload_hash"] != rec.payload_hash:
            problems.append(_("what is sent (the payload) is not what the sheet gave"))
        for key, value in sorted(rec.fields.items()):
            if key in _NOT_COMPARED or key not in row:
                continue
            if not _same(key, value, row[key]):
                shown = _("a different card") if key in ("cards", "card_code") else repr(row[key])
                problems.append(
                    _("{field} {table} in the table, {events!r} in the events").format(
                        field=key, table=shown, events=value
                    )
                )
        if problems:
            report.disagreements.append(
                _("{row}: {problems}").format(row=name, problems=listed(problems))
            )
    for key, rec in records.items():
        if key not in seen and rec.sent:
            report.disagreements.append(
                _(
                    "{row} was sent according to the events ({state}) but the rows table has no "
                    "such row"
                ).format(row=_name(rec), state=rec.state)
            )
