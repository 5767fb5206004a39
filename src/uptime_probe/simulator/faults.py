"""Fault vocabulary of the simulator: which endpoints can fail, how, and a validated spec.

A fault map assigns one `FaultSpec` to each `Endpoint`. Scenarios (YAML) and the control API
(JSON) both go through `parse_fault_map`, so a bad endpoint or mode gets the same message
wherever it comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class Endpoint(StrEnum):
    """The five faultable endpoints, named as in scenarios and the control API."""

    CHAT = "chat"  # GET /
    CONVERSATIONS = "conversations"  # GET /backend-api/conversations
    TASK_CREATE = "task_create"  # POST /backend-api/tasks
    TASK_STATUS = "task_status"  # GET /backend-api/tasks/{id}
    ANSWER = "answer"  # POST /backend-api/conversation: the streamed answer to a message


class FaultMode(StrEnum):
    """How an endpoint misbehaves. See docs/simulator.md for what each looks like on the wire."""

    OK = "ok"
    SLOW = "slow"
    HANG = "hang"
    ERROR = "error"
    EMPTY = "empty"
    STUCK = "stuck"
    RESET = "reset"
    TRUNCATED = "truncated"
    RATE_LIMITED = "rate_limited"
    # A streamed answer's own ways to go wrong (the `answer` endpoint only):
    # The head at once, then silence before the first event (a token of speech, not a secret).
    SLOW_FIRST_TOKEN = "slow_first_token"  # noqa: S105
    STALL = "stall"  # a few tokens, then silence mid-answer, then the rest
    NO_DONE = "no_done"  # the whole answer, but the stream ends without `data: [DONE]`
    ERROR_EVENT = "error_event"  # a few tokens, then an error event, and the end
    HTML_PAGE = "html_page"  # 200 with an HTML error page where the stream should be


DEFAULT_LATENCY = 3.0
DEFAULT_STALL = 10.0
DEFAULT_ERROR_STATUS = 500
DEFAULT_RETRY_AFTER = 5

# Which optional field each mode takes; a field given to any other mode is rejected, so a typo
# such as `{mode: error, latency: 2}` fails loudly instead of being ignored.
_FIELD_OF_MODE: Mapping[FaultMode, tuple[str, object]] = MappingProxyType(
    {
        FaultMode.SLOW: ("latency", DEFAULT_LATENCY),
        FaultMode.SLOW_FIRST_TOKEN: ("latency", DEFAULT_LATENCY),
        FaultMode.STALL: ("latency", DEFAULT_STALL),
        FaultMode.ERROR: ("status", DEFAULT_ERROR_STATUS),
        FaultMode.RATE_LIMITED: ("retry_after", DEFAULT_RETRY_AFTER),
    }
)
_OPTIONAL_FIELDS = ("latency", "status", "retry_after")

# `stuck` is about tasks never completing; it means nothing on the page or the history list.
# The stream faults mean something only where an answer streams.
TASK_ENDPOINTS = frozenset({Endpoint.TASK_CREATE, Endpoint.TASK_STATUS})
STREAM_MODES = frozenset(
    {
        FaultMode.SLOW_FIRST_TOKEN,
        FaultMode.STALL,
        FaultMode.NO_DONE,
        FaultMode.ERROR_EVENT,
        FaultMode.HTML_PAGE,
    }
)
_ENDPOINTS_OF_MODE: Mapping[FaultMode, frozenset[Endpoint]] = MappingProxyType(
    {
        FaultMode.STUCK: TASK_ENDPOINTS,
        **dict.fromkeys(STREAM_MODES, frozenset({Endpoint.ANSWER})),
    }
)


class FaultSpec(BaseModel):
    """One endpoint's fault: `{mode, latency?, status?, retry_after?}`.

    A bare string is accepted as shorthand for `{mode: <string>}`. Defaults are filled in at
    validation, so a validated spec always carries the value it will use.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: FaultMode
    latency: float | None = Field(default=None, gt=0, le=3600, allow_inf_nan=False)
    status: int | None = Field(default=None, ge=400, le=599)
    retry_after: int | None = Field(default=None, ge=0, le=86400)

    @model_validator(mode="before")
    @classmethod
    def _shorthand_and_defaults(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"mode": data}
        if not isinstance(data, Mapping):
            return data  # pydantic reports the wrong type
        data = dict(data)
        try:
            mode = FaultMode(data.get("mode"))
        except ValueError:
            return data  # pydantic reports the bad mode with the list of valid ones
        own = _FIELD_OF_MODE.get(mode)
        for field in _OPTIONAL_FIELDS:
            if data.get(field) is not None and (own is None or own[0] != field):
                raise ValueError(f"{field!r} does not apply to mode {mode.value!r}")
        if own is not None and data.get(own[0]) is None:
            data[own[0]] = own[1]
        return data

    def to_json(self) -> dict[str, object]:
        """The spec as the control API shows it: only the fields that apply."""
        return self.model_dump(mode="json", exclude_none=True)


OK = FaultSpec(mode=FaultMode.OK)

FaultMap = Mapping[Endpoint, FaultSpec]


class FaultSpecError(ValueError):
    """A fault map that cannot be used; the message names every problem and where it is."""


def all_ok() -> dict[Endpoint, FaultSpec]:
    """A complete fault map with every endpoint healthy."""
    return dict.fromkeys(Endpoint, OK)


def format_validation_error(error: ValidationError, prefix: str = "") -> str:
    """Pydantic errors as `path: message` lines, the path dotted from `prefix`."""
    lines = []
    for item in error.errors(include_url=False):
        parts = [prefix] if prefix else []
        parts.extend(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{'.'.join(parts)}: {message}" if parts else message)
    return "; ".join(lines)


def parse_fault_map(raw: object, *, where: str = "faults") -> dict[Endpoint, FaultSpec]:
    """Validate `{endpoint: spec, ...}`; only the endpoints named are returned.

    Raises FaultSpecError listing every problem, each prefixed with its path from `where`.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        prefix = f"{where}: " if where else ""
        raise FaultSpecError(
            f"{prefix}expected a mapping of endpoint to fault spec, got {type(raw).__name__}"
        )
    known = ", ".join(e.value for e in Endpoint)

    def at(name: str) -> str:
        return f"{where}.{name}" if where else name

    top = f"{where}: " if where else ""
    problems: list[str] = []
    parsed: dict[Endpoint, FaultSpec] = {}
    for key, value in raw.items():
        try:
            endpoint = Endpoint(key)
        except ValueError:
            problems.append(f"{top}unknown endpoint {key!r} (expected one of {known})")
            continue
        try:
            spec = value if isinstance(value, FaultSpec) else FaultSpec.model_validate(value)
        except ValidationError as exc:
            problems.append(format_validation_error(exc, at(endpoint.value)))
            continue
        allowed = _ENDPOINTS_OF_MODE.get(spec.mode)
        if allowed is not None and endpoint not in allowed:
            names = ", ".join(sorted(e.value for e in allowed))
            problems.append(
                f"{at(endpoint.value)}: mode {spec.mode.value!r} applies only to {names}"
            )
            continue
        parsed[endpoint] = spec
    if problems:
        raise FaultSpecError("; ".join(problems))
    return parsed
