"""What the console's pages show, read from the store: the overview's figures, record search, a record's timeline.

Plain values out; the templates only format them. The overview's 公示率 is the API's own computation
(``Housekeeping.compute_report``, as ``GET /api/v1/rates``), so the page and the API cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from dataclasses import dataclass
from typing import Any

from adapters.excerpts import mask_ids
from gateway.clock import local_date
from gateway.services.bundle import Services
from outbox import excerpts, search
from outbox.rates import Counts, Group
from outbox.search import Query
from outbox.states import DeliveryState
from schemas.calendar import ZONE as SHANGHAI
from schemas.calendar import OutsideCalendar, end_of_day
from schemas.enums import Kind
from schemas.fields import normalise_code
from schemas.periods import Period, months_back, parse_period

PAGE = 50
TREND_FOR = dt.timedelta(minutes=10)
BREAKER = {"closed": "正常", "open": "熔断中", "half_open": "试探恢复"}
_CODE = re.compile(r"[0-9A-Z]{15,18}")


class Standings:
    """This month's standings, counted again only when something that moves a standing happened
    (``outbox.search.changes``) or the day changed, so the page always equals ``GET /api/v1/rates`` and an idle
    overview costs no recount; and the 11 months before, kept for ``TREND_FOR`` (closed months change only by late
    publications, and a year of deliveries is the heaviest read of the page)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: tuple[Any, dict[str, Any]] | None = None
        self._past: tuple[tuple[str, dt.date], dt.datetime, list[dict[str, Any]]] | None = None

    def current(self, services: Services, month: Period, today: dt.date) -> dict[str, Any]:
        mark = (month.label, today, services.store.db.read(search.changes))
        with self._lock:
            if self._current is not None and self._current[0] == mark:
                return self._current[1]
        groups = self._groups(services, month.start, month.end, today)
        total = _summed([g for gs in groups.values() for g in gs]).as_dict()
        with self._lock:
            self._current = (mark, total)
        return total

    def past(self, services: Services, month: Period, today: dt.date) -> list[dict[str, Any]]:
        now = services.clock.now()
        with self._lock:
            if self._past is not None and self._past[0] == (month.label, today) and now - self._past[1] < TREND_FOR:
                return self._past[2]
        by_month = self._groups(services, months_back(month.end, 12), month.start - dt.timedelta(days=1), today)
        months = [{"month": m, **_summed(groups).as_dict()} for m, groups in sorted(by_month.items())]
        with self._lock:
            self._past = ((month.label, today), now, months)
        return months

    @staticmethod
    def _groups(services: Services, first: dt.date, last: dt.date, today: dt.date) -> dict[str, list[Group]]:
        return services.store.db.read(
            lambda conn: search.month_groups(
                conn, decided_from=first, decided_to=last, as_of=today, as_of_end=end_of_day(today)
            )
        )


def _summed(groups: list[Group]) -> Counts:
    total = Counts()
    for g in groups:
        total.add(g.counts)
    return total


def overview(services: Services, standings: Standings) -> dict[str, Any]:
    """Per target figures, this month's 公示率 with its 12-month trend, at-risk count: everything of the overview but
    the API's target status, which the page reads at the same time (``with_status``).

    This month's standings are counted with the report's own query and arithmetic (what ``GET /api/v1/rates`` sums
    for a month), so the page and the API agree; see ``Standings``."""
    now = services.clock.now()
    names = [name for name, _ in services.settings.targets.items()]
    figures = services.store.db.read(lambda conn: search.target_figures(conn, names, now))
    today = local_date(services.clock)
    month = parse_period(today.strftime("%Y-%m"))
    total = standings.current(services, month, today)
    try:
        at_risk: int | None = len(services.housekeeping.at_risk(limit=5000)["items"])
    except OutsideCalendar:
        at_risk = None
    return {
        "now": now,
        "figures": figures,
        "month": month.label,
        "rate": total["rate"],
        "total": total,
        "trend": [*standings.past(services, month, today), {"month": month.label, **total}],
        "at_risk": at_risk,
        "dead": sum(f["dead"] for f in figures.values()),
    }


def with_status(view: dict[str, Any], targets: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures laid beside ``GET /api/v1/targets``'s answer (enabled, paused, health), one row per target."""
    rows = []
    for t in targets:
        f = view["figures"].get(t["target"], {})
        health = t.get("health") or {}
        oldest = f.get("oldest")
        rows.append(
            {
                **t,
                **f,
                "oldest_age": None if oldest is None else view["now"] - oldest,
                "breaker": health.get("breaker"),
                "held_until": health.get("held_until"),
                "alert": health.get("alert"),
            }
        )
    return {**view, "targets": rows}


def local(value: Any, seconds: bool = True) -> str:
    """A moment (datetime or ISO text) in Beijing time; a date as it is; nothing as a dash."""
    if value is None or value == "":
        return "—"
    moment = value
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(moment, dt.datetime):
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
        return aware.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def age_text(age: dt.timedelta | None) -> str:
    if age is None:
        return "—"
    seconds = int(age.total_seconds())
    if seconds < 60:
        return f"{seconds} 秒"
    if seconds < 3600:
        return f"{seconds // 60} 分钟"
    if seconds < 86400:
        return f"{seconds // 3600} 小时 {seconds % 3600 // 60} 分"
    return f"{seconds // 86400} 天 {seconds % 86400 // 3600} 小时"


def rate_text(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def overview_json(view: dict[str, Any]) -> dict[str, Any]:
    """What the overview's poll replaces on the page: the same texts the page first rendered."""
    return {
        "rate": rate_text(view["rate"]),
        "at_risk": "—" if view["at_risk"] is None else str(view["at_risk"]),
        "dead": str(view["dead"]),
        "targets": {
            t["target"]: {
                "state": "已暂停" if t["paused"] else ("启用" if t["enabled"] else "未启用"),
                "backlog": str(t["backlog"]),
                "oldest": age_text(t["oldest_age"]),
                "published_hour": str(t["published_hour"]),
                "published_day": str(t["published_day"]),
                "failed_day": str(t["failed_day"]),
                "dead": str(t["dead"]),
                "breaker": BREAKER.get(t["breaker"] or "", t["breaker"] or "—"),
                "held_until": local(t["held_until"]),
            }
            for t in view["targets"]
        },
    }


@dataclass(frozen=True, slots=True)
class Search:
    query: Query
    page: int
    problems: list[str]


def _day(value: str | None, label: str, problems: list[str]) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        problems.append(f"{label}：日期格式应为 YYYY-MM-DD（收到 {value!r}）")
        return None


def parse_search(params: dict[str, str]) -> Search:
    """The search form's fields; ``q`` reads as a USCC or ID number (after NFKC: full-width digits typed in a
    Chinese input method count) when it looks like one, else as a source_id or part of the counterpart's name."""
    problems: list[str] = []
    q = (params.get("q") or "").strip()
    code = name = source_id = None
    if q:
        folded = str(normalise_code(q)).replace(" ", "")
        if _CODE.fullmatch(folded) or re.fullmatch(r"[0-9]{17}[0-9X]", folded):
            code = folded
        elif params.get("field") == "source_id":
            source_id = q
        else:
            name = q
    if params.get("source_id"):
        source_id = params["source_id"].strip()
    kind = params.get("kind") or None
    if kind:
        try:
            kind = Kind.from_code(kind).value
        except ValueError:
            problems.append(f"类别：未知的记录类别 {kind!r}")
            kind = None
    state = params.get("state") or None
    if state and state not in {s.value for s in DeliveryState}:
        problems.append(f"投递状态：未知的状态 {state!r}")
        state = None
    try:
        page = max(1, int(params.get("page") or 1))
    except ValueError:
        page = 1
    query = Query(
        source_id=source_id,
        name=name,
        code=code,
        kind=kind,
        department=(params.get("department") or "").strip() or None,
        state=state,
        target=params.get("target") or None,
        decided_from=_day(params.get("from"), "决定日期自", problems),
        decided_to=_day(params.get("to"), "决定日期至", problems),
    )
    return Search(query, page, problems)


def run_search(services: Services, chosen: Search) -> tuple[list[dict[str, Any]], bool]:
    offset = (chosen.page - 1) * PAGE
    return services.store.db.read(lambda conn: search.search(conn, chosen.query, limit=PAGE, offset=offset))


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, before, after) for every field that changed between two versions' content."""
    before, after = _flat(old or {}), _flat(new)
    return [(f, before.get(f), after.get(f)) for f in sorted(set(before) | set(after)) if before.get(f) != after.get(f)]


def _masked(value: Any) -> Any:
    return mask_ids(value) if isinstance(value, str) else value


def timeline(services: Services, record_id: int, *, mask: bool = False) -> dict[str, Any] | None:
    """The API's record view plus every version's content and its changes against the one before; with ``mask``
    (viewers: leadership reads figures, not people's identities) resident ID numbers are shown masked."""
    key = services.store.db.read(lambda conn: search.record_key(conn, record_id))
    if key is None:
        return None
    kind, source_id, source_system = key
    view = services.records.view(Kind.from_code(kind), source_id, source_system)
    versions = services.store.db.read(lambda conn: search.versions(conn, record_id))
    previous: dict[str, Any] | None = None
    for v in versions:
        v["changes"] = diff(previous, v["content"]) if previous is not None else []
        v["fields"] = _flat(v["content"])
        if mask:
            v["changes"] = [(f, _masked(old), _masked(new)) for f, old, new in v["changes"]]
            v["fields"] = {k: _masked(val) for k, val in v["fields"].items()}
        previous = v["content"]
    view["version_contents"] = versions

    def kept(conn: Any) -> tuple[list[int], dict[int, list[dict[str, Any]]]]:
        return excerpts.delivery_ids(conn, record_id), excerpts.for_record(conn, record_id)

    ids, found = services.store.db.read(kept)
    for d, delivery_id in zip(view["deliveries"], ids, strict=False):  # both ordered by version, then id
        d["delivery_id"] = delivery_id
        for a, excerpt in zip(d["attempts"], found.get(delivery_id, []), strict=False):
            a.update(excerpt)
    return view
