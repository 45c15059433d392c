"""Playwright fixtures: Debian's Chromium, headless, against pytest-django's live server.

Screenshots land in var/screenshots/ (kept as CI artifacts); axe-core runs on every page a test
checks and fails on serious or critical findings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Playwright's sync API runs an event loop in this thread; Django's ORM guard would refuse the test's
# own database calls. The live server itself runs in another thread and is unaffected.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("KAP_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
PASSWORD = "test-password-123"


HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[Any]) -> None:
    # This hook sees every collected test of the session: mark only the ones in this folder.
    for item in items:
        if HERE not in Path(str(item.fspath)).resolve().parents:
            continue
        item.add_marker(pytest.mark.browser)
        item.add_marker(pytest.mark.django_db(transaction=True))


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """On SQLite, browser tests use a test database in a file, not Django's shared in-memory one.

    The live server answers in its own threads while the test and the page's polling write too. An
    in-memory database shared between threads locks whole tables and refuses a second writer at once
    ("database table is locked": no waiting), which failed a CI run. A file in WAL mode lets a writer
    wait for the other (settings.py sets a 20 s busy timeout), as the clinic's own SQLite does.
    """
    from django.conf import settings

    for db in settings.DATABASES.values():
        if db["ENGINE"] == "django.db.backends.sqlite3" and not db.get("TEST", {}).get("NAME"):
            db.setdefault("TEST", {})["NAME"] = str(SHOTS.parent / "test-browser-db.sqlite3")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed: browser tests did not run")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield instance
        instance.close()


@pytest.fixture
def server(live_server: Any, settings: Any) -> str:
    settings.ALLOWED_HOSTS = ["*"]
    return str(live_server.url)


def _page(browser: Any, width: int, height: int, **kw: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": width, "height": height}, **kw)
    context.set_default_timeout(15000)
    page = context.new_page()
    # The Content-Security-Policy must never block anything a page needs: Chromium reports each refusal
    # on the console, and any refusal fails the test.
    blocked: list[str] = []
    page.on(
        "console",
        lambda msg: blocked.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    yield page
    context.close()
    assert not blocked, "blocked by the Content-Security-Policy:\n" + "\n".join(blocked)


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    yield from _page(browser, 1280, 900)


@pytest.fixture
def tablet_page(browser: Any, server: str) -> Iterator[Any]:
    yield from _page(browser, 768, 1024, has_touch=True)


@pytest.fixture
def phone_page(browser: Any, server: str) -> Iterator[Any]:
    yield from _page(browser, 390, 844, has_touch=True, is_mobile=True)


@pytest.fixture
def small_phone_page(browser: Any, server: str) -> Iterator[Any]:
    """The narrowest phone the clinic supports: 360 CSS px (nothing may scroll sideways at this width)."""
    yield from _page(browser, 360, 800, has_touch=True, is_mobile=True)


@pytest.fixture
def login(server: str) -> Any:
    def do(page: Any, email: str, password: str = PASSWORD) -> None:
        page.goto(f"{server}/account/login/")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state("networkidle")

    return do


@pytest.fixture
def shot() -> Any:
    SHOTS.mkdir(parents=True, exist_ok=True)

    def do(page: Any, name: str, full_page: bool = True) -> Path:
        path = SHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return do


@pytest.fixture
def axe_check() -> Any:
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()

    def do(page: Any, name: str) -> None:
        results = axe.run(page)
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"]
            if v.get("impact") in ("serious", "critical")
        ]
        assert not bad, f"axe-core found serious/critical problems on {name}:\n" + "\n".join(bad)

    return do
