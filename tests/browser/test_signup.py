"""The sign-up page in a real browser on a phone-sized screen, in English and in Chinese:
sign up (a point picked on the map), the code from the drill carrier, the manage link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page

from incident.keys import NOTIFY, STORE
from tests.support.app import Api, Apps
from tests.support.wait import wait_until

pytestmark = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning",
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning",
)

PHONE = "+15025550188"


@pytest.fixture
async def site(apps: Apps) -> Api:
    # The drill numbers are American: phone sign-ups are taken from the US only.
    return await apps.make(own_url=True, INCIDENT_ENROLMENT__ALLOWED_REGIONS='["US"]')


async def phone_page(browser: Browser, locale: str, errors: list[str]) -> Page:
    context = await browser.new_context(viewport={"width": 390, "height": 844}, locale=locale, is_mobile=True)
    page = await context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "the server responded with a status of 422" not in message.text:
            errors.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda err: errors.append(f"page: {err}"))
    return page


def codes(site: Api) -> list[str]:
    drill = site.client.app[NOTIFY].drill
    assert drill is not None
    return [re.findall(r"\d{6}", m.body)[0] for m in drill.carrier.messages if m.to == PHONE]


async def fill_sign_up(page: Page) -> None:
    await page.fill("#address", "12 Elm St")
    box = await page.locator("#map").bounding_box()
    assert box is not None
    await page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert await page.input_value("#lon") and await page.input_value("#lat")
    await page.fill("#phone", PHONE)
    await page.check("input[name=need][value=blind_or_low_vision]")
    await page.check("input[name=channel][value=voice]")


async def test_sign_up_in_english_then_change_and_cancel(browser: Browser, site: Api, shots: Path) -> None:
    errors: list[str] = []
    page = await phone_page(browser, "en-US", errors)
    await page.goto(str(site.client.make_url("/public/signup")))
    assert await page.locator("h1").text_content() == "Sign up for service alerts"
    # Every field has a label a screen reader reads out.
    for field in ("address", "lon", "lat", "phone", "email", "language", "code"):
        assert await page.locator(f"label[for={field}]").count() == 1, field
    await fill_sign_up(page)
    await page.screenshot(path=str(shots / "signup-en.png"), full_page=True)
    await page.click("#signup button[type=submit]")
    await page.wait_for_selector("#code-step:not([hidden])")
    assert "text message" in (await page.locator("#code-sent").text_content() or "")
    code = (await wait_until(lambda: _async(codes(site)), "the code"))[-1]
    await page.fill("#code", code)
    await page.click("#code-step button[type=submit]")
    await page.wait_for_selector("#done:not([hidden])")
    link = await page.locator("#manage-link").get_attribute("href")
    assert link and "#manage=" in link
    await page.screenshot(path=str(shots / "signup-done-en.png"), full_page=True)

    await page.goto(link)
    await page.reload()  # a fragment change alone does not load the page again
    await page.wait_for_selector("#manage:not([hidden])")
    assert PHONE not in (await page.locator("#m-contact").text_content() or "")
    assert await page.is_checked("input[name=m-channel][value=voice]")
    await page.select_option("#m-language", "zh-CN")
    await page.click("#manage button[type=submit]")
    await page.wait_for_selector("#status:has-text('Saved.')")
    store = site.client.app[STORE]
    account = link.rsplit("=", 1)[1]
    found = [h for h in await store.households_page("self-", 10) if h.source.value == "self"]
    assert len(found) == 1 and found[0].language == "zh-CN" and account
    page.on("dialog", lambda dialog: dialog.accept())
    await page.click("#remove")
    await page.wait_for_selector("#status:has-text('cancelled')")
    assert await store.get_household(found[0].account_id) is None
    assert errors == []


async def test_sign_up_in_chinese_with_a_wrong_code_first(browser: Browser, site: Api, shots: Path) -> None:
    errors: list[str] = []
    page = await phone_page(browser, "zh-CN", errors)
    await page.goto(str(site.client.make_url("/public/signup")))
    assert await page.locator("h1").text_content() == "订阅停水停气通知"
    assert await page.input_value("#language") == "zh-CN"
    await fill_sign_up(page)
    await page.click("#signup button[type=submit]")
    await page.wait_for_selector("#code-step:not([hidden])")
    code = (await wait_until(lambda: _async(codes(site)), "the code"))[-1]
    drill = site.client.app[NOTIFY].drill
    assert drill is not None and all("验证码" in m.body for m in drill.carrier.messages if m.to == PHONE)
    await page.fill("#code", "000000" if code != "000000" else "111111")
    await page.click("#code-step button[type=submit]")
    await page.wait_for_selector("#problem:has-text('还可以尝试4次')")
    await page.screenshot(path=str(shots / "signup-wrong-code-zh.png"), full_page=True)
    await page.fill("#code", code)
    await page.click("#code-step button[type=submit]")
    await page.wait_for_selector("#done:not([hidden])")
    assert await page.locator("#done h2").text_content() == "订阅成功"
    # Switched to English by hand: the page follows, and remembers it.
    await page.select_option("#ui-language", "en")
    assert await page.locator("#done h2").text_content() == "You are signed up"
    assert errors == []


async def _async(value: list[str]) -> list[str]:
    return value
