"""The web console in a real browser: a dispatcher's incident from first drawing to delivered
notices on the command board, the reviewer's export, roles, languages and the live banner."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Page, Route

from incident.keys import LIVE_SOCKETS
from tests.support.app import Api
from tests.support.console import Console, OpenConsole
from tests.support.env import Broker
from tests.support.sample import BOX
from tests.support.wait import wait_until

# The Twilio library (the drill carrier's client) under aiohttp 3.14; see tests/functional/test_fanout.py.
pytestmark = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning",
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning",
)


async def draw_polygon(console: Console) -> None:
    """Four clicks on the map around its middle, then Enter."""
    page = console.page
    box = await page.locator("#dispatch-map").bounding_box()
    assert box is not None
    for fx, fy in ((0.38, 0.38), (0.62, 0.38), (0.62, 0.62), (0.38, 0.62)):
        await page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
    await page.wait_for_selector("text=4 corners")
    await page.keyboard.press("Enter")


async def test_dispatcher_declares_draws_and_sends_and_the_board_counts_live(
    open_console: OpenConsole, console_api: Api, shots: Path
) -> None:
    tokens = console_api.tokens.by_name
    dispatcher = await open_console()
    page = dispatcher.page
    await dispatcher.sign_in(tokens["alice"])
    await page.wait_for_selector("#dispatch-map .leaflet-overlay-pane canvas")

    # Declare from scratch.
    await page.click("#new-incident")
    await page.fill("#declare-title", "Main break on Elm St")
    await page.click("dialog button[value=declare]")
    await page.wait_for_selector("#incident-title:has-text('Main break on Elm St')")
    incident_id = await page.locator("#incidents [aria-current=true]").get_attribute("data-incident")
    assert incident_id and incident_id.startswith("INC-")

    # Draw the area; the household count by priority and language appears.
    await page.click("#tool-draw")
    await draw_polygon(dispatcher)
    households = page.locator("#area-households")
    await households.wait_for()
    count = int(await households.get_attribute("data-households") or 0)
    assert count > 0
    assert await page.locator(".area-result table.mini").count() == 2
    _, incident = await console_api.call("GET", f"/api/incidents/{incident_id}")
    assert incident["households"] == count and incident["area_parts"][0]["method"] == "drawn"
    await page.screenshot(path=str(shots / "dispatch-area.png"))

    # The command board, in a second page, before anything is sent.
    command = await open_console()
    board = command.page
    await command.sign_in(tokens["carol"])
    card = board.locator(f"article.card[data-incident='{incident_id}']")
    await card.wait_for()
    await board.evaluate("window.__noReload = true")

    # Compose: previews per channel and language, with SMS encoding and parts. "Where" is
    # never pre-filled with the title; a preview stores nothing.
    await page.click("#tab-notice")
    assert await page.input_value("#notice-area") == ""
    await page.fill("#notice-area", "Elm St between 1st and 5th Ave")
    await page.click("#notice-preview")
    audience = page.locator("#preview-audience")
    await audience.wait_for()
    planned = int(await audience.get_attribute("data-households") or 0)
    messages = int(await audience.get_attribute("data-deliveries") or 0)
    assert planned > 0 and messages >= planned
    sms = page.locator(".preview-card[data-channel=sms]")
    assert await sms.count() >= 1
    assert await sms.first.locator("[data-encoding]").count() == 1
    assert await sms.first.locator("[data-segments]").count() == 1
    assert (await console_api.call("GET", f"/api/incidents/{incident_id}/notices"))[1]["notices"] == []
    await page.screenshot(path=str(shots / "dispatch-notice.png"))

    # Plan it, then approve what the dialog shows: every text that goes out.
    await page.click("#notice-plan")
    await page.click(".preview [data-approve]")
    summary = page.locator("#approve-summary")
    await summary.wait_for()
    text = await summary.inner_text()
    assert f"{planned:,}" in text and f"{messages:,}" in text
    await assert_dialog_shows_the_notice(page, console_api, incident_id)
    await page.screenshot(path=str(shots / "dispatch-approve.png"))
    await page.click("dialog button[value=send]")
    await page.wait_for_selector(".notices [data-status=approved]")

    # The board counts deliveries as the drill carrier reports them, without a reload.
    async def delivered() -> int:
        cell = card.locator("[data-channel=sms] [data-count=done]")
        if not await cell.count():
            return 0
        return int((await cell.inner_text()).replace(",", ""))

    assert await wait_until(delivered, limit=60) > 0
    assert await board.evaluate("window.__noReload") is True
    await board.screenshot(path=str(shots / "board.png"))
    dispatcher.assert_clean()
    command.assert_clean()


async def assert_dialog_shows_the_notice(page: Page, api: Api, incident_id: str) -> None:
    """The open approval dialog shows each stored text exactly, with its households and parts."""
    _, listed = await api.call("GET", f"/api/incidents/{incident_id}/notices")
    waiting = [n for n in listed["notices"] if n["status"] == "planned" and not n["stale"]]
    _, notice = await api.call("GET", f"/api/incidents/{incident_id}/notices/{waiting[-1]['notice_id']}")
    cards = page.locator("dialog #approve-texts .preview-card")
    assert await cards.count() == len(notice["previews"]) > 0
    for i, p in enumerate(notice["previews"]):
        card = cards.nth(i)
        assert await card.get_attribute("data-channel") == p["channel"]
        assert await card.get_attribute("data-language") == p["language_requested"]
        assert await card.get_attribute("data-households") == str(p["households"])
        shown = await card.locator("pre.text").inner_text()
        assert shown == (p["body"] if p["body"] is not None else p["text"])
        if p["title"]:
            assert await card.locator(".push-title").inner_text() == p["title"]
        if p["segments"]:
            assert await card.locator("[data-segments]").get_attribute("data-segments") == str(p["segments"])


WHERE = {"en": "Maple St between 1st and 5th Ave", "zh-CN": "枫树街第一至第五大道之间"}


async def test_preview_stores_nothing_and_a_stale_plan_is_planned_again_before_approval(
    open_console: OpenConsole, console_api: Api, shots: Path
) -> None:
    inc = await console_api.declare(title="Strong smell of gas outside 5048 Sycamore Ct", area=BOX)
    iid = inc["id"]
    assert (await console_api.call("PUT", f"/api/incidents/{iid}/area/description", json=WHERE))[0] == 200
    console = await open_console()
    page = console.page
    await console.sign_in(console_api.tokens.by_name["alice"])
    await page.goto(f"{console.url}#/dispatch/{iid}")
    await page.click("#tab-notice")
    assert await page.input_value("#notice-area") == WHERE["en"]  # the description, never the title
    _, before = await console_api.call("GET", f"/api/incidents/{iid}")
    for _ in range(3):  # each Preview click: counts and texts, nothing stored
        await page.click("#notice-preview")
        await page.wait_for_selector("#preview-unsaved")
    assert await page.locator(".preview-card").count() > 0
    _, listed = await console_api.call("GET", f"/api/incidents/{iid}/notices")
    _, after = await console_api.call("GET", f"/api/incidents/{iid}")
    assert listed["notices"] == [] and after["last_seq"] == before["last_seq"]

    # Planned, then the area shrinks: the plan is stale and cannot be approved as it was.
    await page.click("#notice-plan")
    await page.wait_for_selector(".notices [data-status=planned]")
    _, listed = await console_api.call("GET", f"/api/incidents/{iid}/notices")
    [old] = listed["notices"]
    half = {"type": "Polygon", "coordinates": [[[-85.56, 38.02], [-85.545, 38.02], [-85.545, 38.05],
                                               [-85.56, 38.05], [-85.56, 38.02]]]}  # fmt: skip
    status, area = await console_api.call("PUT", f"/api/incidents/{iid}/area", json={"geometry": half})
    assert status == 200 and area["households"] < old["counts"]["households"]
    await page.click(
        f".preview [data-approve='{old['notice_id']}']"
    )  # the console still shows the old button
    diff = page.locator("#replan-diff")
    await diff.wait_for()
    assert await diff.get_attribute("data-before") == str(old["counts"]["households"])
    assert await diff.get_attribute("data-after") == str(area["households"])
    assert await page.locator("dialog button[value=send]").count() == 0
    await page.screenshot(path=str(shots / "dispatch-stale.png"))
    status, err = await console_api.call("POST", f"/api/incidents/{iid}/notices/{old['notice_id']}/approve")
    assert status == 409 and err["error"]["code"] == "notice_stale"
    await page.click("dialog button[value=replan]")
    await page.wait_for_selector("#approve-summary")
    await assert_dialog_shows_the_notice(page, console_api, iid)
    await page.click("dialog button[value=send]")
    await page.wait_for_selector(".notices [data-status=approved]")
    await page.wait_for_selector(f".notices [data-notice='{old['notice_id']}'][data-status=superseded]")
    console.assert_clean()


async def test_board_on_a_wall_display_says_when_live_updates_drop_and_come_back(
    open_console: OpenConsole, console_api: Api, shots: Path
) -> None:
    await console_api.declare(
        title="Low pressure on Oak Ave", area=BOX, kind="low_pressure", severity="medium"
    )
    await console_api.declare(title="Main break on Elm St", area=BOX, severity="critical")
    wall = await open_console(1920, 1080)
    page = wall.page
    await wall.sign_in(console_api.tokens.by_name["carol"])
    await page.wait_for_selector("article.card >> nth=1")
    await page.wait_for_selector("#live-pill.live-live")
    await page.wait_for_selector(".slas li.sla")  # the playbooks' SLA clocks
    await page.screenshot(path=str(shots / "board-wall.png"))

    # A new incident appears without a reload.
    await console_api.declare(
        title="Gas smell at the school", kind="gas_leak", utility="gas", severity="high"
    )
    await page.wait_for_selector("article.card h2:has-text('Gas smell at the school')")

    # The service drops every live connection: the banner says so, then the console reconnects.
    for ws in list(console_api.client.app[LIVE_SOCKETS]):
        await ws.close()
    await page.wait_for_selector("#live-banner.down")
    await page.wait_for_selector("#live-banner.ok", timeout=20_000)
    await page.wait_for_selector("#live-pill.live-live")
    wall.errors = [e for e in wall.errors if "WebSocket" not in e]
    wall.assert_clean()


async def test_reviewer_filters_the_timeline_and_exports_csv(
    open_console: OpenConsole, console_api: Api, shots: Path
) -> None:
    inc = await console_api.declare(title="Main break on Elm St", area=BOX)
    status, _ = await console_api.call(
        "POST", f"/api/incidents/{inc['id']}/notes", json={"text": "crew on site"}
    )
    assert status == 201
    reviewer = await open_console()
    page = reviewer.page
    await reviewer.sign_in(console_api.tokens.by_name["rita"])
    assert await page.locator("header nav a").all_inner_texts() == ["Command board", "Review"]
    await page.click(f"#review-incidents [data-incident='{inc['id']}']")
    await page.wait_for_selector("#integrity[data-ok=true]")
    await page.select_option("#filter-type", "note_added")
    await page.wait_for_selector("table.timeline tbody tr >> nth=0")
    rows = page.locator("table.timeline tbody tr")
    assert set(await rows.evaluate_all("rows => rows.map(r => r.dataset.type)")) == {"note_added"}
    assert "crew on site" in await page.inner_text("table.timeline tbody")
    await page.select_option("#filter-type", "")
    await page.screenshot(path=str(shots / "review.png"))

    async with page.expect_download() as info:
        await page.click("#export-csv")
    download = await info.value
    assert download.suggested_filename == f"{inc['id']}-timeline.csv"
    saved = Path(await download.path())
    text = await asyncio.to_thread(saved.read_text, "utf-8")
    assert "crew on site" in text and text.splitlines()[0].startswith("incident_id,seq,at,type,actor")
    reviewer.assert_clean()


async def test_roles_language_keyboard_isolation_and_first_load(
    open_console: OpenConsole, console_api: Api, shots: Path
) -> None:
    console = await open_console()
    page = console.page
    started = time.perf_counter()
    await page.goto(console.url)
    await page.wait_for_selector("#token")
    assert time.perf_counter() - started < 1.0  # first load on loopback
    load = await page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
    assert load < 1000

    # Both languages have the same keys.
    missing = await page.evaluate(
        """async () => {
            const { DICTIONARIES } = await import('/console/i18n.js');
            const en = Object.keys(DICTIONARIES.en), zh = Object.keys(DICTIONARIES['zh-CN']);
            return [en.filter((k) => !zh.includes(k)), zh.filter((k) => !en.includes(k))];
        }"""
    )
    assert missing == [[], []]

    # A dispatcher, by keyboard: declare, then isolate a broken pipe typed by its id.
    await console.sign_in(console_api.tokens.by_name["bob"])
    inc = await console_api.declare("bob", title="Main break on Maple St")
    await page.goto(f"{console.url}#/dispatch/{inc['id']}")
    await page.wait_for_selector("#incident-title")
    await page.focus("#tool-pipe")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#pipe-id:focus")
    await page.keyboard.type("P-10")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#pipe-isolate")
    await page.focus("#pipe-isolate")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#valves-to-close")
    assert (await page.inner_text("#valves-to-close")).startswith("V-")
    await page.wait_for_selector("#dispatch-map path.leaflet-interactive")  # valves and dry pipes drawn
    before = int(await page.get_attribute("#area-households", "data-households") or 0)

    # Drawing without a mouse: arrows move the map under the cross, Space adds a corner, Enter closes.
    await page.select_option("#area-op", "add")
    await page.focus("#tool-draw")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#dispatch-map.drawing:focus")
    for keys in ([], ["ArrowRight"] * 4, ["ArrowDown"] * 4):
        for key in keys:
            await page.keyboard.press(key)
        await page.wait_for_timeout(300)  # let the pan finish
        await page.keyboard.press("Space")
    await page.wait_for_selector("text=3 corners")
    await page.keyboard.press("Enter")

    async def grown() -> bool:
        return int(await page.get_attribute("#area-households", "data-households") or 0) > before

    await wait_until(grown, limit=10)

    # Switch to Chinese: the whole console follows, numbers and all.
    await page.select_option("#lang", "zh-CN")
    await page.wait_for_selector("header nav a:has-text('调度')")
    await page.wait_for_selector("#valves-to-close")
    assert await page.locator("html").get_attribute("lang") == "zh-CN"
    await page.screenshot(path=str(shots / "dispatch-isolation-zh.png"))
    await page.click("#tab-log")
    await page.wait_for_selector(".events li:has-text('范围变更')")
    console.assert_clean()


@pytest.mark.ingest
async def test_a_report_appears_live_in_triage_and_is_declared_with_its_pipe(
    open_console: OpenConsole, console_api: Api, broker: Broker, shots: Path
) -> None:
    console = await open_console()
    page = console.page
    await console.sign_in(console_api.tokens.by_name["alice"])
    await page.wait_for_selector("text=No unassigned reports.")
    report = {
        "report_id": "crew-2026-0001", "kind": "main_break", "utility": "water", "source": "field_crew",
        "observed_at": datetime.now(UTC).isoformat(), "location": {"lon": -85.547, "lat": 38.045},
        "asset": {"type": "pipe", "id": "P-10"}, "severity": "high", "summary": "Water flowing from the road",
    }  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(console_api.reports_topic, json.dumps(report).encode())
    finally:
        await producer.stop()
    item = page.locator("[data-report='crew-2026-0001']")
    await item.wait_for(timeout=30_000)  # live, no reload
    assert "Water flowing from the road" in await item.inner_text()
    await page.screenshot(path=str(shots / "dispatch-triage.png"))

    await item.locator("button:has-text('Declare')").click()
    await page.wait_for_selector("#incident-title:has-text('Water flowing from the road')")
    # The report's pipe is looked up at once: what a break there isolates, ready to apply.
    assert await page.input_value("#pipe-id") == "P-10"
    await page.click("#pipe-isolate")
    await page.wait_for_selector("#valves-to-close")
    assert await page.locator("[data-report='crew-2026-0001']").count() == 0
    console.assert_clean()


EVIL = '<img src="/x.png" id="injected"><b>Main</b> break'


async def hover_area(page: Page, map_selector: str) -> str:
    """Hover the incident's area (an SVG path on the map) and return its tooltip's HTML."""
    path = page.locator(f"{map_selector} .leaflet-overlay-pane svg path.leaflet-interactive").first
    await path.wait_for()
    box = await path.bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tooltip = page.locator(f"{map_selector} .leaflet-tooltip")
    await tooltip.wait_for()
    return str(await tooltip.inner_html())


async def test_incident_titles_on_map_tooltips_stay_text(open_console: OpenConsole, console_api: Api) -> None:
    """Leaflet puts a string tooltip in as HTML: titles (anyone's typing) and report summaries
    (from Kafka) must reach it as text."""
    inc = await console_api.declare(title=EVIL, area=BOX)
    command = await open_console()
    board = command.page
    await command.sign_in(console_api.tokens.by_name["carol"])
    await board.wait_for_selector(f"article.card[data-incident='{inc['id']}']")
    html = await hover_area(board, "#board-map")
    assert "&lt;img" in html and "<img" not in html and "<b>" not in html
    assert EVIL in await board.inner_text("#board-map .leaflet-tooltip")
    assert await board.locator("#injected").count() == 0
    command.assert_clean()

    dispatcher = await open_console()
    page = dispatcher.page
    await dispatcher.sign_in(console_api.tokens.by_name["alice"])
    await page.click("#tab-incidents")
    await page.wait_for_selector(f"#incidents [data-incident='{inc['id']}']")
    html = await hover_area(page, "#dispatch-map")
    assert f"{inc['id']}: " in html and "&lt;img" in html and "<img" not in html
    assert await page.locator("#injected").count() == 0
    dispatcher.assert_clean()


async def test_a_wall_display_started_while_the_service_is_unreachable_keeps_retrying(
    open_console: OpenConsole, console_api: Api
) -> None:
    wall = await open_console()
    page = wall.page
    token = console_api.tokens.by_name["carol"]
    await wall.sign_in(token)
    await page.wait_for_selector("#board-cards")

    # The service does not answer the token check when the page (re)loads: no sign-in form,
    # a countdown, the token kept; it signs in by itself once the service answers.
    refused = 0

    async def unreachable(route: Route) -> None:
        nonlocal refused
        if refused < 2:
            refused += 1
            await route.abort("connectionrefused")
        else:
            await route.continue_()

    await page.route("**/api/me", unreachable)
    await page.reload()
    status = page.locator("#boot-status")
    await status.wait_for()
    assert "Service unreachable, retrying in" in await status.inner_text()
    assert await page.locator("#token").count() == 0
    assert await page.evaluate("sessionStorage.getItem('incident.token')") == token
    await page.wait_for_selector("#board-cards", timeout=15_000)
    await page.wait_for_selector("#live-pill.live-live")
    assert refused == 2
    await page.unroute("**/api/me")

    # "Retry now" does not wait for the countdown.
    await page.route("**/api/me", lambda route: route.abort("connectionrefused"))
    await page.reload()
    await status.wait_for()
    await page.unroute("**/api/me")
    await page.click("#boot-retry")
    await page.wait_for_selector("#board-cards", timeout=5_000)

    # Only a 401 means signing in again.
    await page.route(
        "**/api/me",
        lambda route: route.fulfill(status=401, json={"error": {"code": "unauthorized", "message": "no"}}),
    )
    await page.reload()
    await page.wait_for_selector("#token")
    assert await page.locator("#boot-status").count() == 0
    wall.errors = [e for e in wall.errors if "/api/me" not in e and "Failed to load resource" not in e]
    wall.assert_clean()
