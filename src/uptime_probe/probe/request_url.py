"""The URL a step requests: its template made ready once, filled in on every attempt.

Two promises (docs/configuration.md, "URLs"):

- What the config writes goes out as written. yarl, handed a string, decodes what it
  thinks needs no encoding (`?next=https%3A%2F%2Fx` becomes `?next=https://x`, `%7E`
  becomes `~`) and resolves `%2E%2E`, which breaks signed URLs and OAuth
  `redirect_uri`s. So the path, query and fragment are given to yarl already encoded
  (`encoded=True`), after percent-encoding only what can never be sent in a request
  line (space, control and non-ASCII characters, `"<>\\^`{|}`), as browsers do. The
  scheme and host still go through yarl's parser: it lower-cases them, IDNA-encodes a
  name and checks the port.
- A value extracted from a target cannot reshape the URL. Standing in a path it is one
  path segment, in a query or a fragment one value: everything but RFC 3986's
  unreserved characters is percent-encoded, as RFC 6570's simple expansion `{var}`
  does, and a value that is `.` or `..` has its dots encoded too, so it cannot climb.
  `variables` and `secrets` come from the config and are inserted as written, as is an
  extracted value marked `{{ name | raw }}`. An extracted value standing where the
  origin is still being written (`{{ next_url }}`, `{{ base_url }}{{ next }}`) is a
  URL reference and is inserted as written: the request may then go to another
  origin, which secret_origins.py deals with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import quote

from yarl import URL

from uptime_probe.config.origin import Origin, origin_of
from uptime_probe.config.template import Template


class _Place(Enum):
    """Where a placeholder stands in its URL, from the text before it."""

    START = 1  # before `://`
    AUTHORITY = 2  # after `://`, before the `/`, `?` or `#` that ends the host
    PATH = 3
    QUERY = 4
    FRAGMENT = 5


class _Encoding(Enum):
    RAW = 1
    SEGMENT = 2
    COMPONENT = 3


# What can never appear in a request target as is: percent-encoded, the rest kept.
_UNSENDABLE = re.compile(r'[^\x21-\x7e]|["<>\\^`{|}]')
_ENDS_AUTHORITY = re.compile(r"[/?#]")


def _percent_encode(match: re.Match[str]) -> str:
    return quote(match.group(0), safe="")


def _sendable(text: str) -> str:
    return _UNSENDABLE.sub(_percent_encode, text) if _UNSENDABLE.search(text) else text


def encode_component(value: str) -> str:
    """One query or fragment value: all but unreserved characters encoded (RFC 6570 `{var}`)."""
    return quote(value, safe="")


def encode_segment(value: str) -> str:
    """One path segment: as a component, and `.` or `..` encoded so it cannot climb."""
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded


def build_url(text: str) -> URL:
    """`text` as a URL that sends its path, query and fragment exactly as written.

    ValueError when it is not an absolute URL with a valid host and port.
    """
    scheme, separator, rest = text.partition("://")
    if not separator:
        raise ValueError(f"not an absolute URL: {text[:100]!r}")
    end = _ENDS_AUTHORITY.search(rest)
    authority, tail = (rest[: end.start()], rest[end.start() :]) if end else (rest, "")
    base = URL(f"{scheme}://{authority}")
    if not base.raw_host:
        raise ValueError(f"URL has no host: {text[:100]!r}")
    tail, _, fragment = tail.partition("#")
    path, _, query = tail.partition("?")
    return URL.build(
        scheme=base.scheme,
        authority=base.raw_authority,
        path=_sendable(path) or "/",
        query_string=_sendable(query),
        fragment=_sendable(fragment),
        encoded=True,
    )


def origin_of_text(text: str) -> Origin | None:
    """The origin written at the start of `text`, if a whole one is there."""
    scheme, separator, rest = text.partition("://")
    if not separator:
        return None
    end = _ENDS_AUTHORITY.search(rest)
    try:
        return origin_of(URL(f"{scheme}://{rest[: end.start()] if end else rest}"))
    except ValueError:
        return None


def _advance(place: _Place, text: str) -> _Place:
    """The place after reading `text` from `place`."""
    position = 0
    while True:
        if place is _Place.START:
            found = text.find("://", position)
            if found < 0:
                return place
            place, position = _Place.AUTHORITY, found + 3
        elif place is _Place.AUTHORITY:
            if text.startswith("://", position):  # after a scheme that came from a target
                position += 3
            end = _ENDS_AUTHORITY.search(text, position)
            if end is None:
                return place
            place = {"/": _Place.PATH, "?": _Place.QUERY}.get(end.group(0), _Place.FRAGMENT)
            position = end.end()
        elif place is _Place.PATH:
            query, hash_ = text.find("?", position), text.find("#", position)
            if query < 0 and hash_ < 0:
                return place
            if query >= 0 and (hash_ < 0 or query < hash_):
                place, position = _Place.QUERY, query + 1
            else:
                return _Place.FRAGMENT
        elif place is _Place.QUERY:
            return _Place.FRAGMENT if "#" in text[position:] else place
        else:
            return place


@dataclass(frozen=True, slots=True)
class RequestUrl:
    """A step's URL template, with the config's own values already in place."""

    # Literal text (the config's text and values), or (name, encoding) of an extracted one.
    pieces: tuple[str | tuple[str, _Encoding], ...] = field(repr=False)
    # The URL itself when nothing in it comes from a target: built once, at compile.
    fixed: URL | None = field(repr=False)
    # The origin the config writes; None when a target supplies it (`{{ next_url }}`).
    configured_origin: Origin | None
    # An extracted value stands where it can change the origin.
    origin_varies: bool

    @classmethod
    def compile(cls, template: Template, configured: Mapping[str, str]) -> RequestUrl:
        """`configured`: the config's variables and secrets; every other name is extracted."""
        pieces: list[str | tuple[str, _Encoding]] = []
        literal = ""
        place = _Place.START
        origin_text: str | None = None  # the configured text up to the first extracted value
        origin_varies = False
        for text, name, raw in template.pieces():
            literal += text
            place = _advance(place, text)
            if name is None:
                break
            if name in configured:
                literal += configured[name]
                place = _advance(place, configured[name])
                continue
            if origin_text is None:
                origin_text = "".join(p for p in pieces if isinstance(p, str)) + literal
            if place in (_Place.START, _Place.AUTHORITY):
                # A URL reference from the target: it may set the host, the path, anything.
                encoding, origin_varies = _Encoding.RAW, True
                place = _Place.AUTHORITY
            elif raw:
                encoding = _Encoding.RAW
            elif place is _Place.PATH:
                encoding = _Encoding.SEGMENT
            else:
                encoding = _Encoding.COMPONENT
            pieces.extend((literal, (name, encoding)))
            literal = ""
        pieces.append(literal)
        whole = "".join(p for p in pieces if isinstance(p, str))
        fixed = None
        if len(pieces) == 1:
            try:
                fixed = build_url(whole)
            except ValueError:
                fixed = None  # reported when the step runs, like an unusable extracted URL
        return cls(
            pieces=tuple(piece for piece in pieces if piece != ""),
            fixed=fixed,
            configured_origin=origin_of_text(whole if origin_text is None else origin_text),
            origin_varies=origin_varies,
        )

    def render(self, values: Mapping[str, str]) -> URL:
        """The URL for this attempt; ValueError (or UnicodeError) when values make it unusable."""
        if self.fixed is not None:
            return self.fixed
        out = []
        for piece in self.pieces:
            if isinstance(piece, str):
                out.append(piece)
                continue
            name, encoding = piece
            value = values[name]
            if encoding is _Encoding.SEGMENT:
                value = encode_segment(value)
            elif encoding is _Encoding.COMPONENT:
                value = encode_component(value)
            out.append(value)
        return build_url("".join(out))
