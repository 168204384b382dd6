"""Browser tests: the real app (real store, real broker, the drill carrier) served by aiohttp's
test server, driven in headless Chromium from Debian's packages through Playwright's async API.

No browser is downloaded: Playwright starts /usr/bin/chromium (``.ci/run`` installs it when it
is missing). ``--screenshots DIR`` (or ``INCIDENT_SCREENSHOTS=DIR``; ``.ci/run`` sets
var/screenshots) saves each view's screenshot there, in English and in Chinese (the README
shows some in docs/screenshots/); without either they go to the test's temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from blockbuster import BlockBuster
from playwright.async_api import Browser, ConsoleMessage, async_playwright

from tests.support.app import Api, Apps
from tests.support.console import Console
from tests.support.env import FAST_CALLS

CHROMIUM = Path("/usr/bin/chromium")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--screenshots", default=None, help="save the browser tests' screenshots in this folder")


@pytest.fixture
def shots(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    where = request.config.getoption("--screenshots") or os.environ.get("INCIDENT_SCREENSHOTS")
    path = Path(where) if where else tmp_path / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def playwright_may_block(bb: BlockBuster) -> Iterator[None]:
    """Playwright checks that its Node.js driver is on disk as it starts (once per test, a
    stat of one file): allowed there and nowhere else."""
    bb.functions["os.stat"].can_block_in("playwright/_impl/_driver.py", "compute_driver_executable")
    yield


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: the stores are tested against each other in tests/contract, not through a browser."""
    return f"sqlite:///{tmp_path / 'incident.db'}"


@pytest.fixture
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium chromium-driver (.ci/run does)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium_path: Path, blockbuster: BlockBuster) -> AsyncIterator[Browser]:
    with playwright_may_block(blockbuster):
        manager = async_playwright()
        playwright = await manager.start()
        chromium = await playwright.chromium.launch(executable_path=str(chromium_path), headless=True)
    try:
        yield chromium
    finally:
        await chromium.close()
        await playwright.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ingest: the app consumes reports from its Kafka topic")


@pytest.fixture
async def console_api(request: pytest.FixtureRequest, apps: Apps) -> Api:
    """The whole service with a real clock: playbooks run, notices go to the drill carrier,
    and (marked ``ingest``) reports come in from the broker."""
    ingest = request.node.get_closest_marker("ingest") is not None
    return await apps.make(
        send=True, consume=ingest, system_clock=True, INCIDENT_PLAYBOOKS__ENABLED="true", **FAST_CALLS
    )


@pytest.fixture
def open_console(browser: Browser, console_api: Api) -> Callable[..., Awaitable[Console]]:
    async def open_page(width: int = 1280, height: int = 800) -> Console:
        context = await browser.new_context(
            viewport={"width": width, "height": height}, accept_downloads=True
        )
        page = await context.new_page()
        console = Console(page, str(console_api.client.make_url("/")))

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                console.errors.append(f"console: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda err: console.errors.append(f"page: {err}"))
        page.on("requestfailed", lambda req: console.errors.append(f"request failed: {req.url}"))
        return console

    return open_page
