"""The `browser` step: a page loaded in real Chromium, a few actions, the rendered page judged.

```yaml
- name: sidebar
  browser:
    url: "{{ base_url }}/"
    headers: {Authorization: "Bearer {{ token }}"}
    actions:
      - fill: {selector: "#prompt", text: "hello"}
      - click: "#send"
      - wait_for: {selector: "#answer .done", within: 5s}
  expect:
    status: 200
    elements:
      - {selector: "#history li", min_count: 1, reason: empty_history}
    no_console_errors: true
    max_latency: 3s
```
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from uptime_probe.config.base import Model
from uptime_probe.config.errors import Path
from uptime_probe.config.selectors import check_selector
from uptime_probe.config.steps.parts import ExpectBase, Severity, StepBase
from uptime_probe.config.template import Template
from uptime_probe.config.types import (
    SLUG_PATTERN,
    Duration,
    HeaderName,
    HeaderTemplate,
    Slug,
    StatusExpectation,
    TemplateString,
    compile_regex,
)

MAX_SELECTOR_CHARS = 1000
MAX_ACTIONS = 50
MAX_ELEMENTS = 50
ELEMENT_OPERATORS = ("min_count", "max_count", "text_contains", "text_matches", "visible")
ElementOperator = Literal["min_count", "max_count", "text_contains", "text_matches", "visible"]


# CSS (checked at load), or Playwright's text= and XPath forms (config/selectors.py).
Selector = Annotated[
    str, Field(min_length=1, max_length=MAX_SELECTOR_CHARS), AfterValidator(check_selector)
]


class FillAction(Model):
    """Type `text` into the field `selector` matches (its old value replaced)."""

    selector: Selector
    text: TemplateString


class WaitForAction(Model):
    """Wait until `selector` is attached and visible, up to `within` (default: the deadline)."""

    selector: Selector
    within: Duration | None = None


class BrowserAction(Model):
    """One action of a browser step, in order: exactly one of `fill`, `click`, `wait_for`."""

    fill: FillAction | None = None
    click: Selector | None = None
    wait_for: WaitForAction | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, data: Any) -> Any:
        # `wait_for: "#answer"` stands for `wait_for: {selector: "#answer"}`.
        if isinstance(data, dict) and isinstance(data.get("wait_for"), str):
            return {**data, "wait_for": {"selector": data["wait_for"]}}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> BrowserAction:
        present = [name for name in ("fill", "click", "wait_for") if getattr(self, name)]
        if len(present) != 1:
            raise ValueError(
                f"an action needs exactly one of fill, click, wait_for, got {len(present)}"
            )
        return self

    @property
    def kind(self) -> str:
        return "fill" if self.fill else "click" if self.click else "wait_for"

    @property
    def selector(self) -> str:
        if self.fill is not None:
            return self.fill.selector
        if self.wait_for is not None:
            return self.wait_for.selector
        assert self.click is not None
        return self.click


class ElementAssertion(Model):
    """One CSS selector and one operator: `{selector: "#history li", min_count: 1}`."""

    selector: Selector
    operator: ElementOperator = "min_count"
    expected: Any = 1
    reason: Slug | None = None
    severity: Severity = "critical"

    @classmethod
    def __get_pydantic_json_schema__(cls, _core: Any, _handler: Any) -> dict[str, Any]:
        # The schema users write, not the internal operator/expected split.
        return {
            "type": "object",
            "properties": {
                "selector": {
                    "type": "string",
                    "description": "A CSS selector, or text=... or XPath (docs: Selectors).",
                },
                "min_count": {"type": "integer", "minimum": 0},
                "max_count": {"type": "integer", "minimum": 0},
                "text_contains": {"type": "string"},
                "text_matches": {"type": "string", "description": "A regular expression."},
                "visible": {"type": "boolean"},
                "reason": {"type": "string", "pattern": SLUG_PATTERN},
                "severity": {"enum": ["critical", "warning"]},
            },
            "required": ["selector"],
            "additionalProperties": False,
        }

    @model_validator(mode="before")
    @classmethod
    def _split_operator(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "operator" in data:
            return data
        unknown = [
            key for key in data if key not in (*ELEMENT_OPERATORS, "selector", "reason", "severity")
        ]
        if unknown:
            raise ValueError(
                f"unknown operator {unknown[0]!r}; expected one of {', '.join(ELEMENT_OPERATORS)}"
            )
        present = [key for key in data if key in ELEMENT_OPERATORS]
        if len(present) > 1:
            raise ValueError(
                f"needs at most one operator ({', '.join(ELEMENT_OPERATORS)}), got {len(present)}"
            )
        if not present:  # `{selector: S}` alone: at least one element matches
            return {**data, "operator": "min_count", "expected": 1}
        operator = present[0]
        rest = {key: value for key, value in data.items() if key != operator}
        return {**rest, "operator": operator, "expected": data[operator]}

    @model_validator(mode="after")
    def _check_expected(self) -> ElementAssertion:
        op, expected = self.operator, self.expected
        if op in ("min_count", "max_count") and (
            isinstance(expected, bool) or not isinstance(expected, int) or expected < 0
        ):
            raise ValueError(f"{op} needs a whole number >= 0, got {expected!r}")
        if op == "visible" and not isinstance(expected, bool):
            raise ValueError(f"visible needs true or false, got {expected!r}")
        if op == "text_contains" and not isinstance(expected, str):
            raise ValueError(f"text_contains needs a string, got {expected!r}")
        if op == "text_matches":
            object.__setattr__(self, "expected", compile_regex(expected))
        return self

    def expectation(self) -> str:
        """`>= 1`, `to contain 'Conversations'`, `visible`: as a person reads it."""
        if self.operator == "min_count":
            return f">= {self.expected}"
        if self.operator == "max_count":
            return f"<= {self.expected}"
        if self.operator == "visible":
            return "visible" if self.expected else "not visible"
        if self.operator == "text_matches":
            return f"to match {self.expected.pattern!r}"
        return f"to contain {self.expected!r}"


class BrowserExpect(ExpectBase):
    """The main document's status, then the rendered page (DOM queries, judged by the kind:
    they read the live page, not a body a StepJudge could be handed)."""

    status: StatusExpectation = Field(default="2xx", validate_default=True)
    elements: list[ElementAssertion] = Field(default=[], max_length=MAX_ELEMENTS)
    no_console_errors: bool = False


class BrowserPage(Model):
    """What the browser opens, sends, and does: the value of a step's `browser:` key."""

    url: TemplateString
    # Sent with every request of the page (documents, scripts, fetches), as Chromium's
    # extra HTTP headers; merged over the check's `headers`.
    headers: dict[HeaderName, HeaderTemplate] = {}
    actions: list[BrowserAction] = Field(default=[], max_length=MAX_ACTIONS)


class BrowserStep(StepBase):
    handler: ClassVar[str] = "browser"
    runner: ClassVar[str] = "browser"

    browser: BrowserPage
    expect: BrowserExpect = BrowserExpect()

    @field_validator("extract")
    @classmethod
    def _nothing_to_extract(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value:
            raise ValueError(
                "a browser step extracts nothing (it has no JSON body): extract in a "
                "request step before it"
            )
        return value

    def http_headers(self) -> Mapping[str, Template] | None:
        return self.browser.headers

    def templates(self) -> Iterator[tuple[Path, Any]]:
        page = self.browser
        yield ("browser", "url"), page.url
        for header, value in page.headers.items():
            yield ("browser", "headers", header), value
        for index, action in enumerate(page.actions):
            if action.fill is not None:
                yield ("browser", "actions", index, "fill", "text"), action.fill.text

    def urls(self) -> Iterator[tuple[Path, Template, tuple[str, ...]]]:
        yield ("browser", "url"), self.browser.url, ("http", "https")

    def reasons(self) -> frozenset[str]:
        named = {item.reason for item in self.expect.elements if item.reason}
        if self.poll is not None:
            named.add(self.poll.reason)
        return frozenset(named)
