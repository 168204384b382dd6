"""The console in a browser page, with what went wrong in it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from playwright.async_api import Page


@dataclass
class Console:
    """A browser page on the console, with every console error and failed request it saw."""

    page: Page
    url: str
    errors: list[str] = field(default_factory=list)

    async def sign_in(self, token: str) -> None:
        await self.page.goto(self.url)
        await self.page.fill("#token", token)
        await self.page.click("form.login button[type=submit]")
        await self.page.wait_for_selector("header.top nav a[aria-current=page]")

    def assert_clean(self) -> None:
        assert self.errors == [], self.errors


OpenConsole = Callable[..., Awaitable[Console]]
