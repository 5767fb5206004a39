"""`{{ name }}` placeholders in requests, compiled once at load.

Hand-written rather than Jinja2 on purpose: a probe template only ever substitutes
names, must list the names it uses so an undefined one fails at load, and renders
on the probing hot path, where a regex split done once beats a template engine.

`{{ name | raw }}` is the one filter: in a URL, a value extracted from a target is
encoded for the place it stands in (probe/request_url.py), and `raw` says a config
really wants it inserted as written. Elsewhere every value is inserted as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(\|\s*raw\s*)?\}\}")
_ANY_BRACES = re.compile(r"\{\{.*?\}\}")


class TemplateError(ValueError):
    pass


class Template:
    """A string with `{{ name }}` placeholders; `render` fills them in."""

    __slots__ = ("_parts", "_raw", "names", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        parts: list[str] = []
        names: list[str] = []
        raw: list[bool] = []
        position = 0
        for match in _ANY_BRACES.finditer(source):
            name_match = _PLACEHOLDER.fullmatch(match.group(0))
            if name_match is None:
                raise TemplateError(
                    f"bad placeholder {match.group(0)!r}: "
                    "expected {{ name }} or {{ name | raw }}"
                )
            parts.append(source[position : match.start()])
            parts.append(name_match.group(1))
            names.append(name_match.group(1))
            raw.append(name_match.group(2) is not None)
            position = match.end()
        parts.append(source[position:])
        self._parts = tuple(parts)
        self._raw = tuple(raw)
        self.names = frozenset(names)

    @classmethod
    def parse(cls, value: Any) -> Template:
        if isinstance(value, Template):
            return value
        if not isinstance(value, str):
            raise TemplateError(f"expected a string, got {type(value).__name__}")
        return cls(value)

    def render(self, values: Mapping[str, str]) -> str:
        if not self.names:
            return self.source
        parts = self._parts
        # Even indexes are literal text, odd ones are names.
        return "".join(part if i % 2 == 0 else values[part] for i, part in enumerate(parts))

    def pieces(self) -> Iterator[tuple[str, str | None, bool]]:
        """(literal text, placeholder name, raw) in order; the last one has no name."""
        parts = self._parts
        for index, raw in enumerate(self._raw):
            yield parts[2 * index], parts[2 * index + 1], raw
        yield parts[-1], None, False

    def __str__(self) -> str:
        return self.source

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)


def template_names_in(value: Any) -> frozenset[str]:
    """Placeholder names used anywhere inside a JSON-like value."""
    if isinstance(value, str):
        return Template(value).names
    if isinstance(value, Mapping):
        found: frozenset[str] = frozenset()
        for item in value.values():
            found |= template_names_in(item)
        return found
    if isinstance(value, list):
        found = frozenset()
        for item in value:
            found |= template_names_in(item)
        return found
    return frozenset()


def render_json(value: Any, values: Mapping[str, str]) -> Any:
    """Fill placeholders inside every string of a JSON-like value."""
    if isinstance(value, str):
        return Template(value).render(values) if "{{" in value else value
    if isinstance(value, Mapping):
        return {key: render_json(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [render_json(item, values) for item in value]
    return value
