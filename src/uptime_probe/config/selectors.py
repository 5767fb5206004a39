"""What a browser step's `selector` may be, checked at load: CSS, or Playwright's `text=`
and XPath forms.

The probe hands a selector to Playwright, which reads it this way (its
`parseSelectorString`): a string starting with `name=` names one of its selector engines,
one starting with `//` or `..` is XPath, anything else is CSS for Chromium. The config
language takes three of those forms (docs/configuration.md, "Selectors"):

- **CSS**, checked here against the CSS Selectors Level 4 grammar, so a typo fails the
  load at its line rather than every run of the step;
- **`text=...`**, Playwright's search by rendered text;
- **XPath**: `xpath=...`, or a selector starting with `//`, `(//` or `..`.

The two Playwright forms are passed on as written: their bodies are not CSS, and
Playwright judges them when the step runs. Its other engines (`id=`, `role=`,
`internal:...`), its `>>` chains and its CSS extensions (`:has-text()`, `:visible`) are
not part of the language: each is refused saying what to write instead.

The grammar is soupsieve's (Beautiful Soup's selector engine, pure Python), chosen over
cssselect, which stops at CSS 3 (it refuses `:not(.a, .b)` and `:nth-child(2n+1 of .x)`,
which Chromium takes) and takes any pseudo-class name (`:nth-chlid(2)` passes it), and
over cssselect2, whose parser also takes any name and whose compiler knows too few
(`:required`, `:read-only`, `:placeholder-shown` are refused). soupsieve refuses unknown
pseudo-classes and pseudo-elements, and knows the state pseudo-classes Chromium does, but
for a few (`VALIDITY_PSEUDO_CLASSES`), added here. tests/probe/kinds/test_browser_selectors.py
holds every case of tests/config/test_selectors.py to what real Chromium does with it.
"""

from __future__ import annotations

import re
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from soupsieve import SelectorSyntaxError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# How Playwright tells an engine's name (`text=`, `xpath=`, `internal:role=`) from CSS: a
# name of these characters before the first `=`. No CSS selector has one (an `=` of CSS
# sits inside `[...]`, after a character outside this set).
_ENGINE = re.compile(r"^\s*([a-zA-Z0-9_+\-:*]+)\s*=")
_XPATH = re.compile(r"^\s*(?:\(*//|\.\.)")
_TAKEN_ENGINES = ("text", "xpath")
_PSEUDO_CLASS = re.compile(r":(-?[a-zA-Z_][a-zA-Z0-9_-]*)")
_POSITION = re.compile(r"(?: at)? position (\d+)")

# Form-validity and dialog pseudo-classes Chromium matches and soupsieve does not know
# (simple ones: no argument), each with a stand-in soupsieve knows, of the same length so
# that positions in its messages stay the selector's: soupsieve reads the rest of the
# selector around the stand-in; the page's Chromium matches the real one.
VALIDITY_PSEUDO_CLASSES = {
    "valid": "empty",
    "invalid": "checked",
    "user-valid": "read-write",
    "modal": "empty",
}

# Pseudo-classes soupsieve takes and Chromium refuses (media and link states).
CHROMIUM_LACKS = frozenset(
    {
        "playing",
        "paused",
        "seeking",
        "buffering",
        "stalled",
        "muted",
        "volume-locked",
        "target-within",
        "local-link",
        "closed",
    }
)
_EMPTY_LIST = re.compile(r":(?:is|where)\(\s*\)", re.IGNORECASE)

# Playwright's own CSS pseudo-classes, and what the config says instead.
_PLAYWRIGHT_PSEUDO_CLASSES = {
    "has-text": "an `elements` item's text_contains, or a text= selector",
    "text": "an `elements` item's text_contains, or a text= selector",
    "text-is": "an `elements` item's text_matches, or a text= selector",
    "text-matches": "an `elements` item's text_matches",
    "visible": "an `elements` item's `visible: true`, or wait_for (which waits until visible)",
    "nth-match": ":nth-child() or :nth-of-type()",
}
for _layout in ("light", "left-of", "right-of", "above", "below", "near"):
    _PLAYWRIGHT_PSEUDO_CLASSES[_layout] = "a CSS selector of the element itself"


def check_selector(value: str) -> str:
    """`value` when it is a selector the config takes, else ValueError saying what is wrong
    and what to write instead."""
    if not value.strip():
        raise ValueError("a selector must not be empty")
    if _CONTROL.search(value):
        raise ValueError("a selector must not contain control characters (a line break?)")
    engine = _ENGINE.match(value)
    if engine is not None:
        name = engine.group(1)
        if name not in _TAKEN_ENGINES:
            raise ValueError(
                f"{value!r} names Playwright's {name}= selector engine, which the config "
                "does not take: write a CSS selector, or text=... or xpath=..."
            )
        if not value[engine.end() :].strip():
            raise ValueError(f"{value!r}: {name}= needs something to find after it")
        return value  # Playwright's to read when the step runs
    if _XPATH.match(value):
        return value
    problem = _css_problem(value)
    if problem is not None:
        raise ValueError(f"{value!r} is not a CSS selector the config takes: {problem}")
    return value


def _css_problem(selector: str) -> str | None:
    """What is wrong with `selector` as CSS, or None when it is a CSS selector."""
    # Imported on first use: a config without browser steps never pays for it (~80 ms).
    import soupsieve

    read = selector
    for _ in range(selector.count(":") + 1):  # a stand-in per pseudo-class at most
        try:
            with warnings.catch_warnings():
                # soupsieve takes `:contains()` with a FutureWarning; Chromium refuses it.
                warnings.simplefilter("error", FutureWarning)
                soupsieve.compile(read)
        except soupsieve.SelectorSyntaxError as exc:
            stood_in = _stand_in(read, exc)
            if stood_in is None:
                return _explain(selector, read, exc)
            read = stood_in
            continue
        except FutureWarning:
            return (
                ":contains() is not CSS (Chromium refuses it): use an `elements` item's "
                "text_contains, or a text= selector"
            )
        except NotImplementedError:  # soupsieve's word for a pseudo-element
            return (
                "it selects a pseudo-element (::before, ::marker...), which is no element of "
                "the page: nothing would ever match it"
            )
        return _beyond_chromium(selector)
    return None  # pragma: no cover - every pass removes one error or returns


def _beyond_chromium(selector: str) -> str | None:
    """What soupsieve reads and Chromium refuses, so that it fails the load, not the runs.

    soupsieve takes pseudo-classes Chromium lacks (`CHROMIUM_LACKS`), `:-soup-contains()`,
    an empty forgiving list (`:is()`, `:where()`), namespace prefixes (which need an
    `@namespace` rule no selector can declare) and the nesting selector `&` (which means
    something only inside a style sheet). tests/probe/kinds/test_browser_selectors.py
    holds each to real Chromium refusing it.
    """
    outside = _outside_strings_and_brackets(selector)
    for found in _PSEUDO_CLASS.finditer(outside):
        name = found.group(1).lower()
        if name.startswith("-soup-"):
            return f":{name}() is soupsieve's, not CSS: use an `elements` item's text_contains"
        if name in CHROMIUM_LACKS:
            return f"Chromium has no pseudo-class :{name}"
    if _EMPTY_LIST.search(outside):
        return "an empty :is() or :where() matches nothing: give it a selector"
    if "|" in outside:
        return (
            "a namespace prefix (svg|a) needs an @namespace rule, which a selector cannot "
            "declare: write the tag alone"
        )
    if "&" in outside:
        return "the nesting selector & means something only inside a style sheet"
    return None


def _outside_strings_and_brackets(selector: str) -> str:
    """The selector's text with quoted strings and [attribute] parts left out."""
    kept: list[str] = []
    quote: str | None = None
    depth = 0
    escaped = False
    for char in selector:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif quote is not None:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth = max(depth - 1, 0)
        elif depth == 0:
            kept.append(char)
    return "".join(kept)


def _pseudo_class_at(read: str, exc: SelectorSyntaxError) -> re.Match[str] | None:
    """The pseudo-class soupsieve stopped at (its column, from 1, is the colon's)."""
    return _PSEUDO_CLASS.match(read, exc.col - 1) if exc.col else None


def _stand_in(read: str, exc: SelectorSyntaxError) -> str | None:
    """`read` with the Chromium pseudo-class soupsieve stopped at replaced by one it knows,
    or None when it stopped at something else."""
    found = _pseudo_class_at(read, exc)
    stand_in = VALIDITY_PSEUDO_CLASSES.get(found.group(1).lower()) if found else None
    if found is None or stand_in is None or read[found.end() : found.end() + 1] == "(":
        return None  # not one of them, or `:valid(...)`: no such thing
    return read[: found.start(1)] + stand_in + read[found.end() :]


def _explain(selector: str, read: str, exc: SelectorSyntaxError) -> str:
    found = _pseudo_class_at(read, exc)
    name = found.group(1).lower() if found else None
    if name in _PLAYWRIGHT_PSEUDO_CLASSES:
        return f":{name} is Playwright's, not CSS: use {_PLAYWRIGHT_PSEUDO_CLASSES[name]}"
    if ">>" in selector:
        return (
            "`>>` chains selectors in Playwright, which the config does not take: write one "
            "CSS selector (`#list li` for an li inside #list)"
        )
    if name is not None and name in ("before", "after", "first-line", "first-letter"):
        return f":{name} is a pseudo-element, no element of the page: nothing would match it"
    stripped = selector.strip()
    if stripped[0] in "\"'":
        return "a quoted selector is Playwright's search by text: write text=..."
    for end, where in ((stripped[-1], "ends"), (stripped[0], "starts")):
        if end in ">+~,":
            return f"it {where} with {end!r}: a combinator or a comma needs a selector on each side"
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if name is not None and "was detected as a pseudo-class" in first:
        return f"unknown pseudo-class :{name}"
    # soupsieve counts from 0; a person counts characters from 1.
    first = _POSITION.sub(lambda m: f" at character {int(m.group(1)) + 1}", first)
    return first[:1].lower() + first[1:]
