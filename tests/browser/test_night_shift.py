"""The console fit for a night shift (issue 17): a wall of ten incidents at laptop and wall
sizes, Chinese screens without English status or event words, the triage queue in order,
app push counted as finished, plurals, the isolation look-up with the valves that cannot be
closed, the buttons a dispatcher needs above the fold, toasts off the rows, drill markers.

Screenshots of every screen in both languages go to the ``shots`` folder (the test's
temporary folder unless ``--screenshots DIR``)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, Request, Route

from incident.core.domain import EventDraft
from incident.keys import STORE
from tests.support.app import Api
from tests.support.console import OpenConsole
from tests.support.sample import BOX

pytestmark = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning",
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning",
)


def box(lon: float, lat: float, size: float = 0.008) -> dict[str, Any]:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


# Seven areas near the middle of the service area, three more at its edges declared while the
# board is open (the map must show those too).
PLACES = [(-85.56, 38.02), (-85.55, 38.035), (-85.54, 38.045), (-85.535, 38.025), (-85.555, 38.05),
          (-85.545, 38.015), (-85.53, 38.04), (-85.675, 38.005), (-85.505, 38.075), (-85.67, 38.07)]  # fmt: skip

# Titles in Chinese: an English title would put English words on a Chinese screen.
STREETS = [
    "榆树街",
    "橡树大道",
    "枫树路",
    "松树巷",
    "柳树街",
    "桦树路",
    "栗树街",
    "杉树路",
    "桂花巷",
    "樱花路",
]
SEVERITIES = ["low", "critical", "medium", "high"]

# The English labels of every status, event type, delivery state, kind and severity (the
# lists tests/unit/test_console_i18n.py keeps complete), as the page's own dictionary has them.
ENGLISH_WORDS = """async () => {
  const { DICTIONARIES } = await import('/console/i18n.js');
  const en = DICTIONARIES.en, zh = DICTIONARIES['zh-CN'];
  const groups = ['status.', 'event.', 'delivery.', 'notice_status.', 'kind.', 'severity.', 'deliveries.'];
  return Object.keys(en)
    .filter((k) => groups.some((g) => k.startsWith(g)) && en[k] !== zh[k] && !en[k].includes('{'))
    .map((k) => en[k]);
}"""
RAW_CODE = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")


async def untranslated(page: Page) -> list[str]:
    """English status/event words and raw codes (``main_break``) on a Chinese screen."""
    assert await page.locator("html").get_attribute("lang") == "zh-CN"
    words: list[str] = await page.evaluate(ENGLISH_WORDS)
    assert len(words) > 40
    text = await page.inner_text("body")
    found = [w for w in words if re.search(rf"(?<![A-Za-z]){re.escape(w)}(?![A-Za-z])", text)]
    return found + RAW_CODE.findall(text)


async def in_view(page: Page, selector: str) -> bool:
    """Wholly inside the window, and nothing foreign (a toast, a dialog) over its middle."""
    return bool(
        await page.eval_on_selector(
            selector,
            """(el) => {
                const r = el.getBoundingClientRect();
                if (r.width === 0 || r.top < 0 || r.left < 0 || r.bottom > innerHeight || r.right > innerWidth) return false;
                const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
                return Boolean(top) && (el.contains(top) || top.contains(el));  // not under a foreign box
            }""",
        )
    )


async def assert_every_card_reachable(page: Page, count: int) -> None:
    # The map is ready (its areas drawn; the cards come first) ...
    await page.wait_for_function(
        "(n) => document.querySelectorAll('#board-map .leaflet-tooltip.area-label').length === n", arg=count
    )
    # ... and two frames on, a resize has reached it (ResizeObserver) and it fitted the areas.
    await page.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    cards = page.locator("article.card")
    assert await cards.count() == count
    size = page.viewport_size
    assert size is not None
    column = await page.locator("#board-cards").bounding_box()
    board_map = await page.locator("#board-map").bounding_box()
    assert column is not None and board_map is not None
    # The card column and the map end inside the window: nothing is cut off at the bottom.
    assert column["y"] + column["height"] <= size["height"] + 0.5
    assert board_map["y"] + board_map["height"] <= size["height"] + 0.5 and board_map["height"] > 200
    # Every area is on the map (the incidents' areas are its only SVG paths), none cropped
    # off its edge; and each is labelled on the map itself (nobody hovers over a wall display).
    for what in ("path.leaflet-interactive", ".leaflet-tooltip.area-label"):
        shown = page.locator(f"#board-map {what}")
        assert await shown.count() == count, what
        for i in range(count):
            area = await shown.nth(i).bounding_box()
            assert area is not None
            middle_x, middle_y = area["x"] + area["width"] / 2, area["y"] + area["height"] / 2
            assert board_map["x"] <= middle_x <= board_map["x"] + board_map["width"], (what, i)
            assert board_map["y"] <= middle_y <= board_map["y"] + board_map["height"], (what, i)
    for i in range(count):
        card = cards.nth(i)
        await card.scroll_into_view_if_needed()
        box = await card.bounding_box()
        assert box is not None
        assert (
            column["y"] - 0.5 <= box["y"] and box["y"] + box["height"] <= column["y"] + column["height"] + 0.5
        ), i
        assert box["x"] + box["width"] <= column["x"] + column["width"] + 0.5, i
        assert await in_view(page, f"article.card >> nth={i}")


async def test_a_wall_of_ten_incidents_keeps_every_card_reachable_in_both_languages(
    open_console: OpenConsole, console_api: Api, shots: Path
) -> None:
    async def declare(i: int) -> None:
        await console_api.declare(
            title=f"{STREETS[i]} {i + 1} 号", area=box(*PLACES[i]), severity=SEVERITIES[i % 4],
            kind="low_pressure" if i % 2 else "main_break", drill=i == 3,
        )  # fmt: skip

    for i in range(7):
        await declare(i)
    wall = await open_console(1366, 768)
    page = wall.page
    await wall.sign_in(console_api.tokens.by_name["carol"])
    await page.wait_for_selector("article.card >> nth=6")
    await page.wait_for_selector("#board-map .leaflet-interactive")
    for i in range(7, 10):  # live, far from the others
        await declare(i)
    await page.wait_for_selector("article.card >> nth=9")
    # Most severe first.
    severities = await page.locator("article.card").evaluate_all(
        "cards => cards.map((c) => [...c.classList].find((k) => k.startsWith('sev-')))"
    )
    assert severities == sorted(severities, key=["sev-critical", "sev-high", "sev-medium", "sev-low"].index)
    assert await page.locator("article.card [data-drill]").count() == 1
    assert "10 open incidents" in await page.inner_text(".board-summary")
    assert (
        await page.locator("#board-cards-title").inner_text()
        and await page.locator("#board-map-title").inner_text()
    )

    for width, height in ((1366, 768), (1920, 1080)):
        await page.set_viewport_size({"width": width, "height": height})
        for lang in ("en", "zh-CN"):
            await page.select_option("#lang", lang)
            await page.wait_for_selector("article.card >> nth=9")
            await page.wait_for_selector(f"html[lang='{lang}']")
            await assert_every_card_reachable(page, 10)
            if lang == "zh-CN":
                assert await untranslated(page) == []
            await page.locator("#board-cards").evaluate("el => el.scrollTo(0, 0)")
            await page.screenshot(path=str(shots / f"board-10-{width}x{height}-{lang}.png"))
    wall.assert_clean()


def stored_report(n: int, severity: str, minutes_ago: int) -> dict[str, Any]:
    at = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()
    return {
        "report": {
            "report_id": f"call-{n}", "kind": "main_break", "utility": "water", "source": "call_centre",
            "observed_at": at, "location": {"lon": -85.547, "lat": 38.045}, "severity": severity,
            "summary": f"报告 {n}", "details": {},
        },
        "status": "unassigned", "incident_id": None, "received_at": at, "origin": "api",
    }  # fmt: skip


async def test_dispatch_triage_order_isolation_lookup_fold_and_chinese_screens(
    open_console: OpenConsole, console_api: Api, shots: Path
) -> None:
    console = await open_console(1440, 900)
    page = console.page
    # The triage queue as the service lists it (newest first), in severities out of order.
    reports = [
        stored_report(1, "low", 1), stored_report(2, "critical", 2), stored_report(3, "high", 3),
        stored_report(4, "critical", 40), stored_report(5, "high", 50), stored_report(6, "medium", 60),
    ]  # fmt: skip

    async def queue(route: Route) -> None:
        await route.fulfill(json={"reports": reports})

    await page.route(re.compile(r".*/api/reports\?status=unassigned.*"), queue)
    lookups: list[str] = []

    def seen(request: Request) -> None:
        if "/api/network/pipes/" in request.url:
            lookups.append(request.url)

    page.on("request", seen)
    await console.sign_in(console_api.tokens.by_name["alice"])
    await page.wait_for_selector("[data-report='call-1']")
    order = await page.locator("#reports li").evaluate_all("items => items.map((li) => li.dataset.report)")
    # Severity first, then age: the one waiting longest first.
    assert order == ["call-4", "call-2", "call-5", "call-3", "call-6", "call-1"]
    await page.screenshot(path=str(shots / "dispatch-triage-1440x900-en.png"))

    # No playbook matches gas low pressure: its page and note texts (the utility's own
    # configuration, in the language it wrote them) stay off this screen.
    inc = await console_api.declare(title="榆树街燃气压力低", kind="low_pressure", utility="gas", drill=True)
    await page.goto(f"{console.url}#/dispatch/{inc['id']}")
    await page.wait_for_selector("#incident-title")
    assert await page.locator(".detail-head [data-drill]").count() == 1

    # Zones: their groups are titled, not raw layer ids, and "Use selected zones" is in view.
    await page.click("#tool-zones")
    legends = await page.locator("fieldset.zones legend").all_inner_texts()
    assert legends and not {"dmas", "pressure zones", "pressure_zones"} & set(legends)
    assert await in_view(page, "#zones-apply")
    await page.click("#tool-zones")

    # The isolation look-up takes the valves that cannot be closed, as the isolation does.
    await page.click("#tool-pipe")
    await page.fill("#pipe-id", "P-10")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#pipe-valves")
    valves = (await page.inner_text("#pipe-valves")).split(":", 1)[1].strip().split(", ")
    stuck = valves[:2]  # a repeated query parameter, one per valve
    await page.fill("#pipe-inoperable", ", ".join(stuck))
    await page.press("#pipe-inoperable", "Tab")  # change: looked up again with the list
    await page.wait_for_selector("text=Without the valves that cannot be closed")
    assert "?" + "&".join(f"inoperable={v}" for v in stuck) in lookups[-1]
    assert "inoperable" not in lookups[0]
    put: list[dict[str, Any]] = []
    page.on("request", lambda r: put.append(json.loads(r.post_data or "{}")) if r.method == "PUT" else None)
    await page.click("#pipe-isolate")
    await page.wait_for_selector("#valves-to-close")
    assert put[-1]["isolate"]["inoperable"] == stuck
    # What the crew acts on is above the fold at 1440x900, without scrolling the panel.
    assert await page.locator(".detail").evaluate("el => el.scrollTop") == 0
    assert await in_view(page, "#valves-to-close")
    households = int(await page.get_attribute("#area-households", "data-households") or 0)
    assert (
        await page.inner_text("#area-households")
        == f"{households:,} household{'' if households == 1 else 's'}"
    )

    # A toast takes its own strip under the view: it covers no row, and can be dismissed.
    toast = page.locator("#toasts .toast").last
    await toast.wait_for()
    main = await page.locator("main").bounding_box()
    strip = await page.locator("#toasts").bounding_box()
    assert main is not None and strip is not None and main["y"] + main["height"] <= strip["y"] + 0.5
    await page.screenshot(path=str(shots / "dispatch-isolation-1440x900-en.png"))
    await page.evaluate("import('/console/dom.js').then((dom) => dom.toast('to dismiss', 'error'))")
    await page.locator("#toasts .toast:has-text('to dismiss') button").click()
    await page.wait_for_selector("#toasts .toast:has-text('to dismiss')", state="detached")

    # The same screens in Chinese: no English status or event word, no raw code.
    await page.select_option("#lang", "zh-CN")
    await page.wait_for_selector("#valves-to-close")
    await page.click("#tab-log")
    await page.wait_for_selector(".events li >> nth=1")
    assert await untranslated(page) == []
    await page.screenshot(path=str(shots / "dispatch-log-1440x900-zh.png"))
    await page.click("#tab-reports")
    await page.wait_for_selector("[data-report='call-1']")
    assert await untranslated(page) == []
    await page.screenshot(path=str(shots / "dispatch-triage-1440x900-zh.png"))
    console.assert_clean()


async def test_review_drill_markers_push_finished_plurals_and_chinese_timeline(
    open_console: OpenConsole, console_api: Api, shots: Path
) -> None:
    drill = await console_api.declare(
        title="演练：枫树路燃气压力低",  # noqa: RUF001
        area=BOX, kind="low_pressure", utility="gas", drill=True,
    )  # fmt: skip
    live = await console_api.declare(title="橡树大道水压低", kind="low_pressure", severity="medium")
    await console_api.call("POST", f"/api/incidents/{drill['id']}/notes", json={"text": "阀门已关"})
    reply = EventDraft(
        type="household_reply", actor="household",
        data={"account_id": "A-1", "channel": "sms", "text": "收到", "notice_id": None, "message_sid": "SM1"},
    )  # fmt: skip
    await console_api.client.app[STORE].append(drill["id"], lambda _state: [reply])
    reviewer = await open_console(1366, 768)
    page = reviewer.page
    await reviewer.sign_in(console_api.tokens.by_name["rita"])
    await page.wait_for_selector(f"#review-incidents [data-incident='{live['id']}']")
    assert await page.locator(f"#review-incidents [data-incident='{drill['id']}'] [data-drill]").count() == 1
    assert await page.locator(f"#review-incidents [data-incident='{live['id']}'] [data-drill]").count() == 0

    # App push has no delivery receipt: sent is final, and counted as finished.
    bars = await page.evaluate(
        """async () => {
            const { deliveryBars } = await import('/console/widgets.js');
            const el = deliveryBars({ push: { sent: 22 }, sms: { sent: 3, delivered: 1, planned: 2 } });
            const count = (ch, what) => el.querySelector(`[data-channel=${ch}] [data-count=${what}]`).textContent;
            return { push: [count('push', 'done'), count('push', 'flight')], sms: [count('sms', 'done'), count('sms', 'flight')],
                     text: el.querySelector('[data-channel=push]').textContent };
        }"""
    )
    assert bars["push"] == ["22", "0"] and bars["sms"] == ["1", "5"]
    assert "sent (no delivery receipt)" in bars["text"] and "of 22 messages" in bars["text"]

    # Plurals and numbers through Intl, in both languages.
    words = await page.evaluate(
        """async () => {
            const { t, setLang } = await import('/console/i18n.js');
            const say = () => [1, 2, 1234].map((n) => t('notice.audience.count', { households: n, deliveries: n }));
            const en = say();
            setLang('zh-CN');
            const zh = say();
            setLang('en');
            return { en, zh, preformatted: t('describe.notice_approved', { id: 'N', deliveries: '1' }) };
        }"""
    )
    assert words["en"] == [
        "1 household, 1 message",
        "2 households, 2 messages",
        "1,234 households, 1,234 messages",
    ]
    assert words["zh"] == ["1 户，1 条消息", "2 户，2 条消息", "1,234 户，1,234 条消息"]  # noqa: RUF001
    assert words["preformatted"] == "notice N approved: 1 message"

    await page.click(f"#review-incidents [data-incident='{drill['id']}']")
    await page.wait_for_selector("#integrity[data-ok=true]")
    assert await page.locator(".review-main h2 [data-drill]").count() == 1
    assert re.search(r"Integrity verified: \d+ events", await page.inner_text("#integrity"))
    await page.screenshot(path=str(shots / "review-1366x768-en.png"))
    await page.select_option("#lang", "zh-CN")
    await page.wait_for_selector("table.timeline tr[data-type=household_reply]")
    assert await untranslated(page) == []
    await page.screenshot(path=str(shots / "review-1366x768-zh.png"))
    reviewer.assert_clean()
