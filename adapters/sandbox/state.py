"""What the sandbox platforms remember, in SQLite: every item by key, the latest accepted version per record id,
receipts, and counters for ``/_admin/{target}/stats``.

One connection behind a lock (the sandbox is a test double, not a database server); ``:memory:`` by default,
a file when ``--db`` is given. ``accept_items`` is the business core the three record platforms share.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from adapters.sandbox import articles, rules
from adapters.sandbox.faults import FaultState

TARGETS = ("national", "provincial", "municipal", "portal")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS item (
    target TEXT NOT NULL, key TEXT NOT NULL, record_id TEXT NOT NULL, type TEXT NOT NULL, op TEXT NOT NULL,
    digest TEXT NOT NULL, result TEXT NOT NULL, code TEXT, message TEXT, receipt TEXT, ready_at REAL NOT NULL,
    processed_at REAL NOT NULL, PRIMARY KEY (target, key));
CREATE TABLE IF NOT EXISTS holding (
    target TEXT NOT NULL, record_id TEXT NOT NULL, key TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL,
    data TEXT NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (target, record_id));
CREATE TABLE IF NOT EXISTS receipt (
    target TEXT NOT NULL, receipt TEXT NOT NULL, digest TEXT NOT NULL, keys TEXT NOT NULL, ready_at REAL NOT NULL,
    PRIMARY KEY (target, receipt));
CREATE TABLE IF NOT EXISTS receipt_item (
    target TEXT NOT NULL, receipt TEXT NOT NULL, key TEXT NOT NULL, result TEXT NOT NULL, code TEXT, message TEXT,
    processed_at REAL NOT NULL, PRIMARY KEY (target, receipt, key));
CREATE TABLE IF NOT EXISTS counter (target TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (target, name));
"""


@dataclass(frozen=True)
class Entry:
    """An item as a platform receives it."""

    key: str
    record_id: str
    op: str
    type: str
    data: dict[str, Any]
    reason: str | None = None

    def digest(self) -> str:
        payload = [self.record_id, self.op, self.type, self.data, self.reason]
        return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True)
class Result:
    key: str
    result: str  # accepted | rejected
    code: str | None
    message: str | None
    processed_at: float


class SandboxState:
    def __init__(self, path: str = ":memory:", *, now: Callable[[], float], result_delay: float = 1.0) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.executescript("PRAGMA journal_mode=WAL;" + _SCHEMA)
        self.lock = threading.RLock()
        self.now = now
        self.result_delay = result_delay
        self.faults = {t: FaultState() for t in TARGETS}
        # counters live in memory (one per request is too dear as a SQLite upsert) and reach the table on each
        # stats() read and at shutdown, so a --db file still carries them over a restart
        self.counts: dict[tuple[str, str], int] = {
            (t, n): v for t, n, v in self.db.execute("SELECT target, name, value FROM counter")
        }
        self.unsaved: dict[tuple[str, str], int] = {}

    def delay(self, target: str) -> float:
        override = self.faults[target].faults.result_delay_seconds
        return self.result_delay if override is None else override

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One commit for a request's statements instead of one each (the caller holds the lock)."""
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- counters ------------------------------------------------------------------------------------------

    def count(self, target: str, name: str, by: int = 1) -> None:
        if by:
            key = (target, name)
            self.counts[key] = self.counts.get(key, 0) + by
            self.unsaved[key] = self.unsaved.get(key, 0) + by

    def save_counts(self) -> None:
        """Write the counters' increments since the last call to the ``counter`` table."""
        with self.lock:
            unsaved, self.unsaved = self.unsaved, {}
            self.db.executemany(
                "INSERT INTO counter VALUES (?, ?, ?) ON CONFLICT (target, name) DO UPDATE SET value = value + ?",
                [(target, name, by, by) for (target, name), by in unsaved.items()],
            )

    def stats(self, target: str) -> dict[str, int]:
        with self.lock:
            self.save_counts()
            counters = {name: value for (t, name), value in self.counts.items() if t == target}
            unique = self.db.execute("SELECT count(*) FROM item WHERE target = ?", (target,)).fetchone()[0]
            rejected = self.db.execute(
                "SELECT count(*) FROM item WHERE target = ? AND result = 'rejected'", (target,)
            ).fetchone()[0]
            held = dict(
                self.db.execute(
                    "SELECT status, count(*) FROM holding WHERE target = ? GROUP BY status", (target,)
                ).fetchall()
            )
        return {
            "requests": counters.get("requests", 0),
            "received_items": counters.get("received_items", 0),
            "unique_keys": unique,
            "duplicate_deliveries": counters.get("duplicate_deliveries", 0),
            "public": held.get("public", 0),
            "withdrawn": held.get("withdrawn", 0),
            "rejected": rejected,
        }

    # -- the business core ---------------------------------------------------------------------------------

    def accept_items(self, target: str, entries: Sequence[Entry], receipt: str | None) -> list[Result]:
        """Take a batch: each item once per key, checked, applied to holdings; repeats answer as before."""
        now = self.now()
        faults = self.faults[target]
        ready = now + self.delay(target)
        results: list[Result] = []
        with self.lock:
            self.db.execute("BEGIN")
            self.count(target, "received_items", len(entries))
            known = self._known(target, [e.key for e in entries])
            for entry in entries:
                digest = entry.digest()
                if entry.key in known:
                    old = known[entry.key]
                    if old["digest"] != digest:
                        results.append(Result(entry.key, "rejected", "2010", "key reused with other content", now))
                        continue
                    if old["result"] == "accepted":
                        self.count(target, "duplicate_deliveries")
                    results.append(Result(entry.key, old["result"], old["code"], old["message"], old["processed_at"]))
                    continue
                problem = self._judge(target, entry, faults)
                result = Result(
                    entry.key,
                    "rejected" if problem else "accepted",
                    problem[0] if problem else None,
                    problem[1] if problem else None,
                    now,
                )
                if result.result == "accepted":
                    self._apply(target, entry, now)
                self.db.execute(
                    "INSERT INTO item VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        target,
                        entry.key,
                        entry.record_id,
                        entry.type,
                        entry.op,
                        digest,
                        result.result,
                        result.code,
                        result.message,
                        receipt,
                        ready,
                        now,
                    ),
                )
                known[entry.key] = {
                    "digest": digest,
                    "result": result.result,
                    "code": result.code,
                    "message": result.message,
                    "processed_at": now,
                }
                results.append(result)
            if receipt is not None:  # two-stage: each receipt answers for what this submission got
                self.db.executemany(
                    "INSERT OR REPLACE INTO receipt_item VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(target, receipt, r.key, r.result, r.code, r.message, r.processed_at) for r in results],
                )
            self.db.execute("COMMIT")
        return results

    def _known(self, target: str, keys: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                "SELECT key, digest, result, code, message, processed_at FROM item "
                f"WHERE target = ? AND key IN ({marks})",
                (target, *chunk),
            ):
                found[row[0]] = {
                    "digest": row[1],
                    "result": row[2],
                    "code": row[3],
                    "message": row[4],
                    "processed_at": row[5],
                }
        return found

    def _judge(self, target: str, entry: Entry, faults: FaultState) -> tuple[str, str] | None:
        if entry.op == "withdraw":
            refused = rules.check_reason(entry.reason)
            if refused:
                return refused
            row = self.db.execute(
                "SELECT 1 FROM holding WHERE target = ? AND record_id = ?", (target, entry.record_id)
            ).fetchone()
            return None if row else ("2009", f"withdraw of unknown record {entry.record_id}")
        if entry.op != "upsert":
            return "2004", f"unknown op {entry.op!r}"
        if entry.type in articles.ARTICLE_TYPES:
            problem = articles.check_article(entry.type, entry.data)
        else:
            problem = rules.check(entry.type, entry.data)
        if problem:
            return problem
        rule = faults.faults.reject_rule
        if rule and entry.data.get(rule.field) == rule.equals:
            return rule.code, rule.message
        if faults.hit(faults.faults.late_rejection_rate):
            return "2099", "late business rejection (sandbox fault)"
        return None

    def _apply(self, target: str, entry: Entry, now: float) -> None:
        if entry.op == "withdraw":
            self.db.execute(
                "UPDATE holding SET status = 'withdrawn', key = ?, updated_at = ? WHERE target = ? AND record_id = ?",
                (entry.key, now, target, entry.record_id),
            )
            return
        self.db.execute(
            "INSERT INTO holding VALUES (?, ?, ?, ?, 'public', ?, ?) ON CONFLICT (target, record_id) DO UPDATE SET "
            "key = excluded.key, type = excluded.type, status = 'public', data = excluded.data, "
            "updated_at = excluded.updated_at",
            (target, entry.record_id, entry.key, entry.type, orjson.dumps(entry.data).decode(), now),
        )

    # -- receipts, results, holdings -----------------------------------------------------------------------

    def receipt(self, target: str, receipt: str, digest: str, keys: Sequence[str]) -> str | None:
        """Register a receipt; None if new, else 'same' or 'other' (the id was used with other content)."""
        with self.lock:
            row = self.db.execute(
                "SELECT digest FROM receipt WHERE target = ? AND receipt = ?", (target, receipt)
            ).fetchone()
            if row is not None:
                return "same" if row[0] == digest else "other"
            self.db.execute(
                "INSERT INTO receipt VALUES (?, ?, ?, ?, ?)",
                (target, receipt, digest, orjson.dumps(list(keys)).decode(), self.now() + self.delay(target)),
            )
            return None

    def results(self, target: str, receipt: str) -> tuple[bool, list[Result]] | None:
        """(finished?, per-item results) of a receipt, or None if unknown."""
        with self.lock:
            row = self.db.execute(
                "SELECT keys, ready_at FROM receipt WHERE target = ? AND receipt = ?", (target, receipt)
            ).fetchone()
            if row is None:
                return None
            keys = orjson.loads(row[0])
            if self.now() < row[1]:
                return False, []
            # per receipt, not per key: a key reused with other content is answered 2010 under the receipt that
            # brought it, while the receipt that first brought the key keeps its own answer
            known = {
                r[0]: Result(*r)
                for r in self.db.execute(
                    "SELECT key, result, code, message, processed_at FROM receipt_item "
                    "WHERE target = ? AND receipt = ?",
                    (target, receipt),
                )
            }
        return True, [known[k] for k in keys if k in known]

    def holdings(
        self, target: str, type_code: str | Sequence[str] | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """One page of what ``target`` holds, of one type (or of several: 信用怀化 lists records and articles apart)."""
        where, args = "target = ?", [target]
        if isinstance(type_code, str) and type_code:
            where, args = where + " AND type = ?", [*args, type_code]
        elif type_code and not isinstance(type_code, str):
            types = list(type_code)
            where, args = where + f" AND type IN ({','.join('?' * len(types))})", [*args, *types]
        with self.lock:
            total = self.db.execute(f"SELECT count(*) FROM holding WHERE {where}", args).fetchone()[0]
            rows = self.db.execute(
                f"SELECT record_id, key, type, status, data, updated_at FROM holding WHERE {where} "
                "ORDER BY record_id LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
        return total, [
            {
                "record_id": r[0],
                "key": r[1],
                "type": r[2],
                "status": r[3],
                "data": orjson.loads(r[4]),
                "updated_at": r[5],
            }
            for r in rows
        ]

    def put_notice(self, external_id: str, column: str, notice: dict[str, Any]) -> tuple[bool, bool]:
        """Store a portal notice; (created?, identical to what was held?)."""
        digest = hashlib.sha256(orjson.dumps(notice, option=orjson.OPT_SORT_KEYS)).hexdigest()
        now = self.now()
        with self.lock, self.transaction():
            self.count("portal", "received_items")
            row = self.db.execute(
                "SELECT key, status FROM holding WHERE target = 'portal' AND record_id = ?", (external_id,)
            ).fetchone()
            same = row is not None and row[0] == digest and row[1] == "public"
            if same:
                self.count("portal", "duplicate_deliveries")
            self.db.execute(
                "INSERT INTO holding VALUES ('portal', ?, ?, ?, 'public', ?, ?) ON CONFLICT (target, record_id) DO "
                "UPDATE SET key = excluded.key, type = excluded.type, status = 'public', data = excluded.data, "
                "updated_at = excluded.updated_at",
                (external_id, digest, column, orjson.dumps(notice).decode(), now),
            )
            self.db.execute(
                "INSERT INTO item VALUES ('portal', ?, ?, ?, 'upsert', ?, 'accepted', NULL, NULL, NULL, ?, ?) "
                "ON CONFLICT (target, key) DO NOTHING",
                (f"{external_id}:{digest[:16]}", external_id, column, digest, now, now),
            )
        return row is None, same

    def delete_notice(self, external_id: str) -> bool:
        """Withdraw a notice; a deletion is an item of its own (keyed by the notice it removes)."""
        now = self.now()
        with self.lock:
            self.count("portal", "received_items")
            row = self.db.execute(
                "SELECT status, key, type FROM holding WHERE target = 'portal' AND record_id = ?", (external_id,)
            ).fetchone()
            if row is None:
                return False
            key = f"{external_id}:withdraw:{row[1][:16]}"
            if row[0] != "public":
                self.count("portal", "duplicate_deliveries")
                return False
            self.db.execute(
                "UPDATE holding SET status = 'withdrawn', updated_at = ? WHERE target = 'portal' AND record_id = ?",
                (now, external_id),
            )
            self.db.execute(
                "INSERT INTO item VALUES ('portal', ?, ?, ?, 'withdraw', ?, 'accepted', NULL, NULL, NULL, ?, ?) "
                "ON CONFLICT (target, key) DO NOTHING",
                (key, external_id, row[2], row[1], now, now),
            )
            return True

    def forget(self, target: str, keys: Iterable[str]) -> int:
        """Lose records (reconciliation tests): the holdings whose current key or record id is given."""
        keys = list(keys)
        with self.lock:
            marks = ",".join("?" * len(keys))
            cursor = self.db.execute(
                f"DELETE FROM holding WHERE target = ? AND (key IN ({marks}) OR record_id IN ({marks}))",
                (target, *keys, *keys),
            )
            return cursor.rowcount

    def alter(self, target: str, key: str, fields: dict[str, str]) -> bool:
        with self.lock:
            row = self.db.execute(
                "SELECT record_id, data FROM holding WHERE target = ? AND (key = ? OR record_id = ?)",
                (target, key, key),
            ).fetchone()
            if row is None:
                return False
            data = orjson.loads(row[1])
            if target == "portal":
                labels = {f["label"]: i for i, f in enumerate(data["fields"])}
                for label, value in fields.items():
                    if label in labels:
                        data["fields"][labels[label]]["value"] = value
                    else:
                        data["fields"].append({"label": label, "value": value})
            else:
                data.update(fields)
            self.db.execute(
                "UPDATE holding SET data = ?, updated_at = ? WHERE target = ? AND record_id = ?",
                (orjson.dumps(data).decode(), self.now(), target, row[0]),
            )
            return True
