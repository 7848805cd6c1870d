"""Quotas end to end: work news and a typical case posted to a real ``serve --sandbox`` process, delivered to the
sandbox portal and 信用怀化 by the gateway's own worker, then counted in the 月度任务 and 年度任务 of the API's live
report and of the CSV the ``report`` command writes: the same rows in both.

Hand count (2026-10; the articles are accepted now, before the end of the as-of day, today):
* 建工科 news 10-15 and 10-20 → portal 2 of 1, 达标; 房监科 news 10-21 → portal 1 of 1, 达标;
* the bureau: the three news items on 信用怀化 → 3 of 2, 达标;
* 房监科 case 03-01 → typical cases 1 of 1, 达标; 建工科 none → 0 of 1, 未达标; no list changes → red/black 0, 未达标.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_articles import published
from tests.e2e.test_cli import env_for, free_port, run, running
from tests.factories import case, news

PORTAL, MUNICIPAL = "门户网站工作动态（篇）", "向信用怀化推送工作动态（篇，全局）"
MONTHLY = [
    ["2026-10", "建工科", PORTAL, 1, 2, 0, "达标"],
    ["2026-10", "房监科", PORTAL, 1, 1, 0, "达标"],
    ["2026-10", "全局", MUNICIPAL, 2, 3, 0, "达标"],
]
YEARLY = [
    ["2026", "建工科", "典型案例（个）", 1, 0, 1, "未达标"],
    ["2026", "建工科", "红名单推送（次）", 1, 0, 1, "未达标"],
    ["2026", "建工科", "黑名单推送（次）", 1, 0, 1, "未达标"],
    ["2026", "房监科", "典型案例（个）", 1, 1, 0, "达标"],
    ["2026", "房监科", "红名单推送（次）", 1, 0, 1, "未达标"],
    ["2026", "房监科", "黑名单推送（次）", 1, 0, 1, "未达标"],
]


def rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [i["period"], i["department"], i["label"], i["target"], i["actual"], i["missing"], i["status"]] for i in items
    ]


def test_delivered_articles_count_in_the_api_report_and_the_cli_csv(tmp_path: Path) -> None:
    port = free_port()
    env = env_for(tmp_path, CREDIT_GATEWAY_PORT=str(port))
    source = run(["keys", "create", "--name", "office-cms", "--role", "source", "--kinds", "cases,news"], env, tmp_path)
    operator = run(["keys", "create", "--name", "credit-office", "--role", "operator"], env, tmp_path)
    source_key, operator_key = source.stdout.split()[-1], operator.stdout.split()[-1]
    articles = [
        ("news", news("DT-1", department="建工科", published_on="2026-10-15")),
        ("news", news("DT-2", department="建工科", published_on="2026-10-20")),
        ("news", news("DT-3", department="房监科", published_on="2026-10-21")),
        ("cases", case("AL-1", department="房监科", published_on="2026-03-01")),
    ]
    with running(["serve", "--sandbox"], env, tmp_path):
        base = f"http://127.0.0.1:{port}"
        for kind, body in articles:
            posted = httpx.post(f"{base}/api/v1/{kind}", json=body, headers={"Authorization": f"Bearer {source_key}"})
            assert posted.status_code == 201, posted.text
        for kind, body in articles:
            view = published(base, source_key, f"/api/v1/{kind}/{body['source_id']}")
            assert {d["state"] for d in view["deliveries"]} == {"published"}, view["deliveries"]

        live = httpx.get(
            f"{base}/api/v1/rates", params={"period": "2026-10"}, headers={"Authorization": f"Bearer {operator_key}"}
        )
        assert live.status_code == 200, live.text
        assert rows(live.json()["tasks"]["monthly"]) == MONTHLY
        assert rows(live.json()["tasks"]["yearly"]) == YEARLY

    out = tmp_path / "oct.csv"
    made = run(["report", "--period", "2026-10", "--format", "csv", "-o", str(out), "--no-keep"], env, tmp_path)
    assert made.returncode == 0, made.stderr
    lines = list(csv.reader(out.read_text(encoding="utf-8-sig").splitlines()))
    for title, expected in (("月度任务", MONTHLY), ("年度任务", YEARLY)):
        start = lines.index([title, "2026-10"]) + 2
        block = lines[start : start + len(expected)]
        assert [[*r[:3], int(r[3]), int(r[4]), int(r[5]), r[6]] for r in block] == expected, title
