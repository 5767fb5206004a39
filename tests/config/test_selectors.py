"""A browser step's selectors, checked at load (config/selectors.py).

The tables are the language: what loads, and what is refused with which words. The same
tables are held to real Chromium in tests/probe/kinds/test_browser_selectors.py, so a
selector that loads here is one Playwright and Chromium take, and one refused here as not
CSS is one they refuse too (or a Playwright form the config leaves out on purpose).
"""

from __future__ import annotations

import json
import re

import pytest

from uptime_probe.config import ConfigError, parse_config
from uptime_probe.config.selectors import check_selector

# CSS the config takes, each a form that a hand parser would likely get wrong.
VALID_CSS = [
    "#history li",
    "  #history   >  li  ",  # spaces around and inside
    "ul#history > li.item + li ~ li",
    'a[href^="https://"]',
    "a[href$='.pdf' i]",  # case-insensitive attribute flag
    "[data-state=open]",
    "[lang|=en]",
    'a[title="x >> y"]',  # `>>` inside a string is no chain
    'a[title=":has-text(x)"]',  # nor is a pseudo-class inside one
    "li:nth-child(2n+1)",
    "li:nth-child( 2n + 1 )",
    "li:nth-child(odd)",
    "li:nth-of-type(-n+3)",
    "li:nth-child(2n+1 of .unread)",
    "ul:has(> li)",
    "ul:has(+ p, ~ div)",
    "li:not(.archived, .deleted)",
    "a:not(:has(img))",
    ":is(nav, aside) a",
    "main :where(h1, h2)",
    "input:required:not(:disabled)",
    "input:placeholder-shown",
    "input:checked",
    "input:invalid",  # soupsieve does not know it: a stand-in reads the rest
    "form:has(input:user-valid) button:valid",
    "dialog:modal",
    "a:hover, a:focus-visible",
    ":root > body",
    ":scope > li",
    "li:first-child:last-of-type",
    "p:empty",
    "p:lang(en)",
    "p:dir(ltr)",
    "#\\31 23",  # an id starting with a digit, escaped
    "#a\\:b",  # an escaped colon is no pseudo-class
    ".\\66oo",  # a hex escape
    "li.über",  # unicode identifiers
    "#😀",
    '[data-title="日本語"]',
    "a /* a comment */ b",
    "*",
]
# Playwright's text= and XPath forms, passed on as written.
VALID_PLAYWRIGHT = [
    "text=Conversations",
    "text='No conversations yet'",
    "xpath=//ul[@id='history']/li",
    "//ul[@id='history']/li",
    "(//li)[2]",
    "../li",
]

# Refused, and a word of the message that says why.
INVALID = [
    ("input[name=prompt", "malformed attribute selector at character 6"),
    ('a[title="x]', "malformed attribute selector"),
    ("#", "malformed id selector"),
    (".1a", "malformed class selector"),
    (":not(a", "unclosed pseudo-class"),
    ("li)", "unmatched pseudo-class close"),
    ("div >", "it ends with '>'"),
    ("ul,", "it ends with ','"),
    ("+ li", "it starts with '+'"),
    ("li:nth-chlid(2)", "unknown pseudo-class :nth-chlid"),
    ("li:nth-child(2n+)", "invalid syntax for pseudo class ':nth-child'"),
    ("a:not()", "expected a selector"),
    ("li:has()", "expected a selector"),
    ("input:valid(x)", "unknown pseudo-class :valid"),
    ("p::before", "pseudo-element"),
    ("li::marker", "pseudo-element"),
    ("p:before", ":before is a pseudo-element"),
    ('li:contains("x")', ":contains() is not CSS"),
    ('li:has-text("Hello")', ":has-text is Playwright's, not CSS: use an `elements` item's text_"),
    ("li:visible", ":visible is Playwright's"),
    ("li:nth-match(li, 2)", ":nth-match is Playwright's"),
    ("#list >> li", "`>>` chains selectors in Playwright"),
    ('"Hello"', "write text=..."),
    ("role=button", "names Playwright's role= selector engine"),
    ("id=history", "names Playwright's id= selector engine"),
    ("css=li", "names Playwright's css= selector engine"),
    ("internal:role=button", "names Playwright's internal:role= selector engine"),
    ("text=", "text= needs something to find"),
    ("xpath=  ", "xpath= needs something to find"),
    ("   ", "must not be empty"),
    ("li\n", "control characters"),
    # soupsieve reads these; Chromium refuses them.
    ("svg|a", "namespace prefix"),
    ("ul :is(svg|a)", "namespace prefix"),
    ("*|a", "namespace prefix"),
    ("&", "nesting selector"),
    ("li &", "nesting selector"),
    (':-soup-contains("x")', ":-soup-contains() is soupsieve's"),
    ("video:playing", "Chromium has no pseudo-class :playing"),
    ("video:paused", "Chromium has no pseudo-class :paused"),
    ("a:local-link", "Chromium has no pseudo-class :local-link"),
    ("a:is()", "an empty :is() or :where()"),
    ("a:where( )", "an empty :is() or :where()"),
]


@pytest.mark.parametrize("selector", VALID_CSS + VALID_PLAYWRIGHT)
def test_a_selector_the_language_takes_loads_as_written(selector: str) -> None:
    assert check_selector(selector) == selector


@pytest.mark.parametrize(("selector", "why"), INVALID, ids=[case for case, _ in INVALID])
def test_a_selector_outside_the_language_is_refused_saying_why(selector: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)) as raised:
        check_selector(selector)
    message = str(raised.value)
    if selector.strip() and "\n" not in selector:
        assert repr(selector) in message  # which selector, as written


FIELDS = {
    "fill": "actions: [{fill: {selector: %s, text: hi}}]",
    "click": "actions: [{click: %s}]",
    "wait_for": "actions: [{wait_for: %s}]",
    "wait_for (long form)": "actions: [{wait_for: {selector: %s, within: 1s}}]",
}


@pytest.mark.parametrize("field", FIELDS)
def test_every_selector_of_an_action_is_checked_at_its_place(field: str) -> None:
    page = FIELDS[field] % '"#send:nth-chlid(2)"'
    document = (
        "checks:\n  - name: sidebar\n    steps:\n      - name: page\n"
        f"        browser: {{url: 'http://127.0.0.1:9/', {page}}}\n"
    )
    with pytest.raises(ConfigError) as raised:
        parse_config(document)
    (issue,) = raised.value.issues
    key = field.split()[0]
    tail = () if key == "click" else ("selector",)  # `wait_for: S` is `{selector: S}`
    assert issue.path == ("checks", 0, "steps", 0, "browser", "actions", 0, key, *tail)
    assert issue.message == (
        "'#send:nth-chlid(2)' is not a CSS selector the config takes: "
        "unknown pseudo-class :nth-chlid"
    )
    assert issue.line == 5


def test_every_selector_of_the_elements_is_checked_and_all_are_reported() -> None:
    document = """\
checks:
  - name: sidebar
    steps:
      - name: page
        browser: {url: "http://127.0.0.1:9/"}
        expect:
          elements:
            - {selector: "#history li", min_count: 1}
            - {selector: "#history li:has-text('Trip')", reason: empty_history}
            - {selector: "ul >", max_count: 0}
"""
    with pytest.raises(ConfigError) as raised:
        parse_config(document)
    places = [(issue.path, issue.line) for issue in raised.value.issues]
    elements = ("checks", 0, "steps", 0, "expect", "elements")
    assert places == [((*elements, 1, "selector"), 9), ((*elements, 2, "selector"), 10)]


def test_a_config_with_every_valid_form_loads() -> None:
    items = "\n".join(
        f"            - {{selector: {json.dumps(selector, ensure_ascii=False)}, min_count: 0}}"
        for selector in VALID_CSS + VALID_PLAYWRIGHT
    )
    actions = "\n".join(
        f"            - wait_for: {{selector: {json.dumps(selector)}, within: 1s}}"
        for selector in VALID_CSS[:5] + VALID_PLAYWRIGHT
    )
    document = (
        "checks:\n  - name: sidebar\n    steps:\n      - name: page\n"
        "        browser:\n          url: 'http://127.0.0.1:9/'\n          actions:\n"
        f"{actions}\n        expect:\n          elements:\n{items}\n"
    )
    (check,) = parse_config(document).checks
    step = check.steps[0]
    selectors = [item.selector for item in step.expect.elements]  # type: ignore[union-attr]
    assert selectors == VALID_CSS + VALID_PLAYWRIGHT
