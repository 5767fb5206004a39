"""The selectors the config takes (tests/config/test_selectors.py) held to what real
Chromium, through Playwright, does with them: every selector that loads is one they read;
every one refused as not CSS is one they refuse too, but for the few the language leaves
out on purpose, listed here with why.

Chromium must be there (scripts/test.sh installs it): a missing one fails, never skips.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from uptime_probe.config.chromium import find_chromium
from uptime_probe.probe.browser_pool import BrowserPool

from ...config.test_selectors import INVALID, VALID_CSS, VALID_PLAYWRIGHT

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Refused at load though Playwright reads them: its own forms and extensions, which the
# config language leaves out (docs/configuration.md, "Selectors"), and what no step needs.
REFUSED_BY_DESIGN = {
    'li:has-text("Hello")': "Playwright's CSS extension",
    "li:visible": "Playwright's CSS extension",
    "li:nth-match(li, 2)": "Playwright's CSS extension",
    "#list >> li": "Playwright's chain",
    '"Hello"': "Playwright's quoted text search",
    "role=button": "a Playwright engine the language leaves out",
    "id=history": "a Playwright engine the language leaves out",
    "css=li": "a Playwright engine the language leaves out",
    "internal:role=button": "Playwright's internal engine",
    "p:before": "a pseudo-element in CSS 2 spelling: Chromium reads it, nothing matches it",
    "+ li": "a leading combinator, which Playwright reads from the document's root",
    "text=": "matches every element with text: surely a mistake",
    "li\n": "a line break in a selector",
}

PAGE = """<!doctype html><meta charset="utf-8">
<nav id="sidebar"><ul id="history"><li class="unread">Trip</li><li>Taxes</li></ul></nav>
<form><input required placeholder="Ask"><input type="checkbox" checked></form>
<dialog></dialog><p lang="en" dir="ltr"></p>"""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def page() -> AsyncIterator[Page]:
    executable = find_chromium(None)
    assert executable, "no Chromium on PATH: scripts/test.sh installs Debian's chromium"
    pool = BrowserPool(executable)
    browser = await pool.browser()
    context = await browser.new_context()
    page = await context.new_page()
    await page.set_content(PAGE)
    yield page
    await context.close()
    await pool.close()


@pytest.mark.parametrize("selector", VALID_CSS + VALID_PLAYWRIGHT)
async def test_every_selector_that_loads_is_one_chromium_reads(page: Page, selector: str) -> None:
    count = await page.locator(selector).count()
    assert count >= 0


async def test_the_forms_find_the_elements_they_name(page: Page) -> None:
    assert await page.locator("#history li").count() == 2
    assert await page.locator("li:nth-child(2n+1 of .unread)").count() == 1
    assert await page.locator("ul:has(> li)").count() == 1
    assert await page.locator("input:required:not(:disabled)").count() == 1
    assert await page.locator("input:invalid").count() == 1  # required and empty
    assert await page.locator("xpath=//ul[@id='history']/li").count() == 2
    assert await page.locator("text=Taxes").count() == 1


@pytest.mark.parametrize("selector", [case for case, _ in INVALID if case not in REFUSED_BY_DESIGN])
async def test_every_selector_refused_as_not_css_is_one_chromium_refuses(
    page: Page, selector: str
) -> None:
    with pytest.raises(PlaywrightError):
        await page.locator(selector).count()


@pytest.mark.parametrize("selector", list(REFUSED_BY_DESIGN))
async def test_the_forms_refused_by_design_are_ones_playwright_reads(
    page: Page, selector: str
) -> None:
    assert selector in {case for case, _ in INVALID}
    assert await page.locator(selector).count() >= 0
