"""The console in a real browser (Debian's chromium driven by Playwright) against a real ``serve --sandbox``.

Every request the browser makes to a host other than loopback is aborted, so the pages (and /docs) prove they need
nothing from the internet. Each page is saved as a screenshot under ``artefacts/console/`` (ignored by git);
``docs/images/console-*.png`` are copies kept for the README.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.test_cli import env_for, free_port, run, running
from tests.factories import COMPANY, NAME_MISMATCH, licence, make_uscc

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artefacts" / "console"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "控制台 long enough pass"
REJECT = {"reject_rule": NAME_MISMATCH}
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@dataclass
class Gateway:
    base: str
    admin_password: str
    source_key: str
    operator_key: str

    def api(self, path: str, **params: str) -> dict:  # type: ignore[type-arg]
        answer = httpx.get(
            f"{self.base}/api/v1{path}", params=params, headers={"Authorization": f"Bearer {self.operator_key}"}
        )
        answer.raise_for_status()
        return answer.json()  # type: ignore[no-any-return]


def until(check, what: str, seconds: float = 60):  # type: ignore[no-untyped-def]
    """Poll ``check`` until it returns something truthy, within a deadline (no fixed sleeps)."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("console")
    port = free_port()
    env = env_for(tmp, CREDIT_GATEWAY_PORT=str(port))
    assert run(["migrate"], env, tmp).returncode == 0
    keys = {}
    for name, role in (("approval-system", "source"), ("credit-office", "operator")):
        made = run(["keys", "create", "--name", name, "--role", role], env, tmp)
        assert made.returncode == 0, made.stderr
        keys[role] = made.stdout.strip().splitlines()[-1]
    with running(["serve", "--sandbox"], env, tmp) as log:
        shown = re.search(r"password (\S+)", "".join(line for line in log if "demo console admin" in line))
        assert shown is not None
        yield Gateway(f"http://127.0.0.1:{port}", shown.group(1), keys["source"], keys["operator"])


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser, gateway: Gateway):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    outside: list[str] = []

    def offline(route, request):  # type: ignore[no-untyped-def]
        if urlparse(request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(request.url)
            route.abort()

    context.route("**/*", offline)
    opened = context.new_page()
    yield opened
    context.close()
    assert not outside, f"the page asked the internet for {outside}"


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page, gateway: Gateway, name: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{gateway.base}/console/login")
    page.fill('input[name="username"]', name)
    page.fill('input[name="password"]', password)
    page.click('button[type="submit"]')


def post_record(gateway: Gateway, record: dict) -> dict:  # type: ignore[type-arg]
    answer = httpx.post(
        f"{gateway.base}/api/v1/licences", json=record, headers={"Authorization": f"Bearer {gateway.source_key}"}
    )
    assert answer.status_code in (200, 201), answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_an_operator_fixes_a_rejected_delivery_from_the_browser(page, gateway: Gateway) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{gateway.base}/console/records")
    assert page.url.endswith("/console/login")
    shot(page, "01-login")
    sign_in(page, gateway, "admin", gateway.admin_password)
    page.wait_for_url(f"{gateway.base}/console/")

    # a rejection rule on the municipal platform: the record's delivery there dies with the platform's own words
    httpx.put(f"{gateway.base}/sandbox/_admin/municipal/faults", json=REJECT).raise_for_status()
    stored = post_record(gateway, licence("XK-CONSOLE-1"))
    post_record(
        gateway,
        licence(
            "XK-CONSOLE-2",
            counterpart={
                **licence()["counterpart"],
                "name": "怀化市另一家公司",
                "uscc": make_uscc("91431200MA4L7P3K8"),
            },
        ),
    )
    until(lambda: gateway.api("/dead-letters", target="municipal")["total"] == 1, "the rejected delivery")

    # the overview shows what the API shows, once the other deliveries have settled
    def settled() -> bool:
        counts = {t["target"]: t["deliveries"] for t in gateway.api("/targets")["targets"]}
        return all(counts[t].get("published", 0) == 2 for t in ("national", "provincial", "portal"))

    until(settled, "the three other targets to publish both records")
    page.goto(f"{gateway.base}/console/")
    api_targets = gateway.api("/targets")["targets"]
    for t in api_targets:
        backlog = sum(t["deliveries"].get(s, 0) for s in ("pending", "retry_wait", "in_flight", "awaiting_result"))
        assert page.locator(f'[data-target="{t["target"]}"] [data-field="backlog"]').inner_text() == str(backlog)
    month = page.locator("h2", has_text="本月公示率").inner_text()
    period = re.search(r"(\d{4}-\d{2})", month).group(1)  # type: ignore[union-attr]
    rate = gateway.api("/rates", period=period)["summary"]["total"]["rate"]
    shown = page.locator('[data-field="rate"]').inner_text()
    assert shown == ("—" if rate is None else f"{rate * 100:.1f}%")
    assert page.locator('[data-target="municipal"] [data-field="dead"]').inner_text() == "1"
    page.wait_for_selector("body[data-polled]", state="attached", timeout=20_000)  # the live poll ran
    shot(page, "02-overview")

    page.goto(f"{gateway.base}/console/dead-letters")
    row = page.locator("tr[data-delivery-id]")
    assert row.count() == 1
    assert row.locator('[data-field="code"]').inner_text() == "2004"
    assert row.locator('[data-field="message"]').inner_text() == "名称不一致"
    shot(page, "03-dead-letters")
    httpx.delete(f"{gateway.base}/sandbox/_admin/municipal/faults").raise_for_status()
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    row.locator('input[name="ids"]').check()
    page.click('button:has-text("重新投递")')
    page.wait_for_selector("text=已重新投递 1 条")
    assert asked == ["确认重新投递选中的 1 条投递？"]

    def published() -> bool:
        page.goto(f"{gateway.base}/console/records/{stored['id']}")
        return page.locator('.delivery[data-delivery-target="municipal"][data-state="published"]').count() == 1

    until(published, "the requeued delivery to be published")
    assert page.locator("text=名称不一致").count() >= 1  # the failed attempt stays in the timeline
    shot(page, "04-record-timeline")

    # search by the USCC typed with full-width digits (as a Chinese input method gives them)
    page.goto(f"{gateway.base}/console/records")
    page.fill('input[name="q"]', COMPANY.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"}))
    page.click('form.filters button[type="submit"]')
    page.wait_for_selector("tr[data-record-id]")
    assert page.locator("tr[data-record-id]").count() == 1
    assert page.locator(f'tr[data-record-id="{stored["id"]}"]').count() == 1
    shot(page, "05-records")

    # pause and resume a target from its page
    page.goto(f"{gateway.base}/console/targets")
    national = page.locator('tr[data-target="national"]')
    national.locator('input[name="reason"]').fill("信用中国接口维护")
    national.locator('button:has-text("暂停")').click()
    page.wait_for_selector("text=national 已暂停")
    assert gateway.api("/targets")["targets"][0]["paused"]["reason"] == "信用中国接口维护"
    shot(page, "06-targets")
    page.locator('tr[data-target="national"] button:has-text("恢复")').click()
    page.wait_for_selector("text=national 已恢复推送")
    assert gateway.api("/targets")["targets"][0]["paused"] is None

    # replay: the dry-run list first
    page.locator('tr[data-target="portal"] button:has-text("预览重放")').click()
    page.wait_for_selector("text=重放预览")
    shot(page, "07-replay-preview")
    page.goto(f"{gateway.base}/console/targets")
    page.locator('tr[data-target="portal"] button:has-text("立即对账")').click()
    page.wait_for_url(re.compile(r".*/console/reconciliations/\d+$"))
    assert "对账 #" in page.locator("h1").inner_text()
    shot(page, "07b-reconciliation")
    for path, name in (
        ("/console/reconciliations", "08-reconciliations"),
        ("/console/reports", "09-reports"),
        ("/console/checks", "10-checks"),
        ("/console/articles", "11-articles"),
        ("/console/audit", "12-audit"),
        ("/console/keys", "13-keys"),
        ("/console/users", "14-users"),
    ):
        page.goto(gateway.base + path)
        shot(page, name)
    page.goto(f"{gateway.base}/console/reports")
    page.click('form.filters button[type="submit"]')
    page.wait_for_selector("text=已生成报告")
    for fmt in ("xlsx", "html", "docx", "csv", "json"):
        with page.expect_download() as download:
            page.locator(f'tr[data-report-id] a:has-text("{fmt.upper()}")').first.click()
        assert download.value.suggested_filename.endswith(f".{fmt}")
    audit = page.goto(f"{gateway.base}/console/audit?action=delivery.requeue").text()  # type: ignore[union-attr]
    assert "delivery.requeue" in audit and ">admin<" in audit  # the person, as the API would name its key

    # a form posted without its CSRF token changes nothing
    forged = page.request.post(f"{gateway.base}/console/targets/portal/pause", form={"reason": "伪造"})
    assert forged.status == 403
    assert gateway.api("/targets")["targets"][3]["paused"] is None


def test_a_viewer_reads_everything_and_may_change_nothing(page, gateway: Gateway) -> None:  # type: ignore[no-untyped-def]
    sign_in(page, gateway, "admin", gateway.admin_password)
    page.wait_for_url(f"{gateway.base}/console/")
    page.goto(f"{gateway.base}/console/users")
    form = page.locator('form[action="/console/users"]')
    form.locator('input[name="name"]').fill("局领导")
    form.locator('select[name="role"]').select_option("viewer")
    form.locator('input[name="password"]').fill(PASSWORD)
    form.locator('button[type="submit"]').click()
    page.wait_for_selector("text=已创建 局领导")
    page.click("text=退出")
    page.wait_for_url(f"{gateway.base}/console/login")

    sign_in(page, gateway, "局领导", PASSWORD)
    page.wait_for_url(f"{gateway.base}/console/")
    for path in ("/", "/records", "/dead-letters", "/targets", "/reconciliations", "/reports", "/audit"):
        assert page.goto(f"{gateway.base}/console{path}").status == 200  # type: ignore[union-attr]
    page.goto(f"{gateway.base}/console/targets")
    shot(page, "15-viewer-targets")
    page.locator('tr[data-target="portal"] input[name="reason"]').fill("想暂停")
    page.locator('tr[data-target="portal"] button:has-text("暂停")').click()
    assert page.locator("h1").inner_text() == "403 · 无权操作"
    shot(page, "16-viewer-refused")
    token = re.search(r'name="csrf" value="([^"]+)"', page.goto(f"{gateway.base}/console/targets").text())  # type: ignore[union-attr]
    assert token is not None
    for path, form in (
        ("/console/dead-letters", {"op": "requeue", "scope": "all"}),
        ("/console/targets/portal/pause", {"reason": "x"}),
        ("/console/targets/portal/resume", {}),
        ("/console/targets/portal/replay", {"since": "2026-01-01", "confirm": "yes"}),
        ("/console/targets/portal/reconcile", {}),
        ("/console/reports", {"period": "2026-10"}),
        ("/console/keys", {"name": "x", "role": "operator"}),
        ("/console/keys/revoke", {"prefix": "cgk_"}),
        ("/console/users", {"name": "x", "role": "admin", "password": PASSWORD}),
        ("/console/users/disable", {"name": "admin"}),
        ("/console/users/password", {"name": "admin", "password": PASSWORD}),
    ):
        assert page.request.post(gateway.base + path, form={"csrf": token.group(1), **form}).status == 403, path
    assert gateway.api("/targets")["targets"][3]["paused"] is None


def test_the_sixth_wrong_password_finds_the_name_locked(page, gateway: Gateway) -> None:  # type: ignore[no-untyped-def]
    sign_in(page, gateway, "admin", gateway.admin_password)
    page.wait_for_url(f"{gateway.base}/console/")
    page.goto(f"{gateway.base}/console/users")
    form = page.locator('form[action="/console/users"]')
    form.locator('input[name="name"]').fill("值班员")
    form.locator('input[name="password"]').fill(PASSWORD)
    form.locator('button[type="submit"]').click()
    page.wait_for_selector("text=已创建 值班员")
    page.context.clear_cookies()
    for attempt in range(1, 7):
        sign_in(page, gateway, "值班员", f"wrong password {attempt}")
        message = page.locator('[role="alert"]').inner_text()
        assert ("已暂时锁定" in message) == (attempt == 6), (attempt, message)
    shot(page, "17-locked")
    sign_in(page, gateway, "值班员", PASSWORD)  # the right password is refused while the lock lasts
    assert "已暂时锁定" in page.locator('[role="alert"]').inner_text()


def test_docs_render_their_operations_with_the_network_cut_off(page, gateway: Gateway) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{gateway.base}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() > 20
    assert page.locator(".opblock-summary-path", has_text="/api/v1/dead-letters").count() >= 1
    shot(page, "18-docs")
