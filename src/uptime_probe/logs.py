"""structlog, configured once: JSON lines off a terminal, colour on one, secrets removed."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any, TextIO

import structlog

from uptime_probe.config.redaction import Redactor

EventDict = MutableMapping[str, Any]


class RedactSecrets:
    """Runs before the renderer, so no secret reaches a log line whatever field carries it."""

    def __init__(self) -> None:
        self.redactor = Redactor(())

    def __call__(self, _logger: Any, _name: str, event: EventDict) -> EventDict:
        if not self.redactor.active:
            return event
        return {key: self._clean(value) for key, value in event.items()}

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redactor(value)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value


def configure_logging(
    level: str = "info", stream: TextIO | None = None, *, force_json: bool | None = None
) -> RedactSecrets:
    """Set up structlog for the process; returns the redactor to load secrets into."""
    out = stream or sys.stderr
    as_json = force_json if force_json is not None else not out.isatty()
    redact = RedactSecrets()
    renderer: Callable[..., Any] = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=True)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    return redact
