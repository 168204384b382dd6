"""The residents' page in a real browser at a phone's size, in English and Chinese: the open
public incidents, "is my address affected?" by tapping the map or typing coordinates, the
language switch, and no error (a blocked inline script would show as one)."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, ConsoleMessage, Page, ViewportSize

from tests.support.app import Api
from tests.support.console import Console
from tests.support.sample import BOX

PHONE: ViewportSize = {"width": 390, "height": 844}
INSIDE = (-85.545, 38.035)
NEAR = (-85.5285, 38.035)


async def _public_incident(api: Api) -> dict[str, str]:
    inc = await api.declare(area=BOX, title="Main break — internal: valve V-7 seized")
    status, _ = await api.call("PUT", f"/api/incidents/{inc['id']}/area/description",
                               json={"en": "Maple St and Walnut Rd", "zh-CN": "枫树街和胡桃路"})  # fmt: skip
    assert status == 200
    status, planned = await api.call("POST", f"/api/incidents/{inc['id']}/notices", json={
        "template": "boil_water", "channels": ["sms"], "facts": {"etr": "2026-11-22T18:00:00+00:00"}})  # fmt: skip
    assert status == 201, planned
    notice_id = planned["notice"]["notice_id"]
    status, _ = await api.call("POST", f"/api/incidents/{inc['id']}/notices/{notice_id}/approve")
    assert status == 200
    # Neither an internal incident nor a drill is shown.
    await api.declare(area=BOX, title="Internal only")
    await api.declare(area=BOX, title="Drill", drill=True)
    return inc


async def _open(browser: Browser, api: Api, locale: str) -> Console:
    context = await browser.new_context(viewport=PHONE, locale=locale, has_touch=True, is_mobile=True)
    page = await context.new_page()
    console = Console(page, str(api.client.make_url("/public/")))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console.errors.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda err: console.errors.append(f"page: {err}"))
    await page.goto(console.url)
    await page.wait_for_selector("#incidents .incident")
    return console


async def _show_map(page: Page) -> None:
    """The whole map in the viewport (clicks are made at viewport positions)."""
    await page.evaluate("document.getElementById('map').scrollIntoView({block: 'start'})")


async def _tap_map(page: Page, lon: float, lat: float) -> None:
    await _show_map(page)
    x, y = await page.evaluate("([lon, lat]) => window.publicMap.toScreen(lon, lat)", [lon, lat])
    await page.mouse.click(x, y)


async def _verdict(page: Page, answer: str) -> str:
    verdict = page.locator(f"#answer .verdict[data-answer={answer}]")
    await verdict.wait_for()
    return await verdict.inner_text()


async def test_a_resident_checks_an_address_in_english_then_chinese(
    browser: Browser, api: Api, shots: Path
) -> None:
    await _public_incident(api)
    console = await _open(browser, api, "en-US")
    page = console.page
    assert await page.locator("html").get_attribute("lang") == "en"
    assert await page.locator("h1").inner_text() == "Service updates"
    assert await page.locator("#incidents .incident").count() == 1
    card = await page.locator("#incidents .incident").inner_text()
    assert "Water main break" in card and "Maple St and Walnut Rd" in card and "boil" in card.lower()
    body = await page.locator("body").inner_text()
    assert "valve" not in body and "Internal only" not in body and "Drill" not in body
    assert await page.locator("#map path.area").count() == 1
    assert await page.locator("a[href='/public/signup']").count() == 1
    await page.screenshot(path=str(shots / "public-en.png"), full_page=True)

    # Tap inside the area: affected, with the advice.
    await _tap_map(page, *INSIDE)
    text = await _verdict(page, "affected")
    assert text.startswith("Yes")
    assert "Maple St and Walnut Rd" in await page.locator("#answer").inner_text()
    await page.locator("#answer").scroll_into_view_if_needed()
    await page.screenshot(path=str(shots / "public-en-affected.png"))

    # Tap a corner of the map, far outside: not affected.
    await _show_map(page)
    box = await page.locator("#map").bounding_box()
    assert box is not None
    await page.mouse.click(box["x"] + 12, box["y"] + 12)
    assert (await _verdict(page, "not_affected")).startswith("No")

    # Type coordinates just outside the area: near. Nonsense is refused on the page.
    await page.fill("#lat", "north")
    await page.click("#check-button")
    assert "latitude between -90 and 90" in await page.locator("#form-error").inner_text()
    await page.fill("#lat", str(NEAR[1]))
    await page.fill("#lon", str(NEAR[0]))
    await page.click("#check-button")
    assert (await _verdict(page, "near")).startswith("Near")

    # Switch to Chinese: every string, the advice and the answer follow.
    await page.select_option("#lang", "zh-CN")
    await page.wait_for_selector("h1:has-text('服务动态')")
    assert await page.locator("html").get_attribute("lang") == "zh-CN"
    await page.wait_for_selector("#incidents .incident:has-text('枫树街和胡桃路')")
    card = await page.locator("#incidents .incident").inner_text()
    assert "供水主管破裂" in card and "煮沸" in card
    assert (await _verdict(page, "near")).startswith("附近")
    await _tap_map(page, *INSIDE)
    assert (await _verdict(page, "affected")).startswith("是")
    await page.screenshot(path=str(shots / "public-zh-CN.png"), full_page=True)
    console.assert_clean()


async def test_a_chinese_browser_gets_the_chinese_page(browser: Browser, api: Api, shots: Path) -> None:
    await _public_incident(api)
    console = await _open(browser, api, "zh-CN")
    page = console.page
    assert await page.locator("h1").inner_text() == "服务动态"
    assert await page.locator("#lang").input_value() == "zh-CN"
    await page.wait_for_selector("#incidents .incident:has-text('枫树街和胡桃路')")
    await _tap_map(page, -85.572, 38.008)  # on the map, ~1.5 km from the area
    assert (await _verdict(page, "not_affected")).startswith("否")
    # Switching back to English stays chosen on the next visit.
    await page.select_option("#lang", "en")
    await page.wait_for_selector("h1:has-text('Service updates')")
    await page.reload()
    await page.wait_for_selector("#incidents .incident:has-text('Maple St and Walnut Rd')")
    assert await page.locator("h1").inner_text() == "Service updates"
    # Large tap targets: every button and the language menu at least 44 px high.
    for selector in ("#check-button", "#locate", "#lang", "a.button", "#incidents button"):
        size = await page.locator(selector).first.bounding_box()
        assert size is not None and size["height"] >= 44, selector
    await page.screenshot(path=str(shots / "public-zh-CN-to-en.png"))
    console.assert_clean()


async def test_a_dispatcher_shows_an_incident_to_residents_from_the_console(
    browser: Browser, api: Api, shots: Path
) -> None:
    inc = await api.declare(area=BOX, title="Main break on Maple St")
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    dispatcher = Console(await context.new_page(), str(api.client.make_url("/")))
    dispatcher.page.on("pageerror", lambda err: dispatcher.errors.append(f"page: {err}"))
    await dispatcher.sign_in(api.tokens.by_name["alice"])
    page = dispatcher.page
    await page.goto(f"{dispatcher.url}#/dispatch/{inc['id']}")
    await page.wait_for_selector("#incident-public[data-public=false]")
    await page.click("#toggle-public")
    await page.wait_for_selector("#incident-public[data-public=true]")
    _, now = await api.call("GET", f"/api/incidents/{inc['id']}")
    assert now["public"] is True

    resident = await _open(browser, api, "en-GB")
    assert await resident.page.locator("#incidents .incident").count() == 1
    assert "Main break on Maple St" not in await resident.page.locator("body").inner_text()
    resident.assert_clean()

    await page.click("#toggle-public")
    await page.wait_for_selector("#incident-public[data-public=false]")
    await resident.page.reload()
    await resident.page.wait_for_selector("#list-state:has-text('no incidents')")
    assert await resident.page.locator("#incidents .incident").count() == 0

    # A drill has no switch.
    drill = await api.declare(area=BOX, drill=True)
    await page.goto(f"{dispatcher.url}#/dispatch/{drill['id']}")
    await page.wait_for_selector("#incident-title")
    await page.wait_for_selector("text=Never shown (drill)")
    assert await page.locator("#toggle-public").count() == 0
    dispatcher.assert_clean()
