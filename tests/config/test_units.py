"""Durations, sizes and status expectations as written in probes.yaml."""

from __future__ import annotations

import re
from typing import Any

import pytest

from uptime_probe.config.types import StatusMatcher
from uptime_probe.config.units import format_duration, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("1ms", 0.001),
        ("10s", 10.0),
        ("1.5s", 1.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        (" 10s ", 10.0),
        ("10 s", 10.0),
        (10, 10.0),
        (0.5, 0.5),
    ],
)
def test_duration(text: Any, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10", "invalid duration '10': use a number and a unit"),
        ("10 seconds", "invalid duration '10 seconds'"),
        ("1w", "invalid duration '1w'"),
        ("-5s", "invalid duration '-5s'"),
        ("1e3s", "invalid duration '1e3s'"),
        ("", "invalid duration ''"),
        ("0s", "duration must be positive, got '0s'"),
        (0, "duration must be positive, got 0"),
        (-1, "duration must be positive, got -1"),
        (True, "invalid duration True"),
        (None, "invalid duration None"),
        ([1], "invalid duration [1]"),
        (float("inf"), "invalid duration inf: out of range"),
        (float("nan"), "invalid duration nan: out of range"),
        pytest.param(10**400, "invalid duration 100000", id="400-digit-int"),
        pytest.param("9" * 400 + "s", "invalid duration '99999", id="400-digit-string"),
        (1e15, "invalid duration 1000000000000000.0: out of range"),
    ],
)
def test_invalid_duration(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.25, "250ms"),
        (1.0, "1s"),
        (1.5, "1.5s"),
        (45.0, "45s"),
        (60.0, "1m"),
        (90.0, "90s"),
        (300.0, "5m"),
        (3600.0, "1h"),
        (5400.0, "90m"),
        (86400.0, "24h"),
    ],
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (1, 1),
        (1048576, 1048576),
        ("100", 100),
        ("100B", 100),
        ("1KB", 1000),
        ("1KiB", 1024),
        ("512 KiB", 512 * 1024),
        ("1MB", 1000**2),
        ("1MiB", 1024**2),
        ("2GiB", 2 * 1024**3),
        ("1GB", 1000**3),
    ],
)
def test_size(value: Any, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize(
    "value", ["1 parsec", "1.5MiB", "1mib", "-1", "", 0, -5, 1.5, True, None, "0KiB"]
)
def test_invalid_size(value: Any) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(value)


@pytest.mark.parametrize(
    ("value", "accepted", "rejected", "text"),
    [
        (200, {200}, {201, 500}, "200"),
        ([200, 201, 202], {200, 201, 202}, {203, 204}, "200 or 201 or 202"),
        ("2xx", {200, 204, 299}, {199, 300}, "2xx"),
        ("5xx", {500, 599}, {499}, "5xx"),
        ([204, "3xx"], {204, 301, 399}, {200, 400}, "204 or 3xx"),
        (100, {100}, {101}, "100"),
        (599, {599}, {598}, "599"),
    ],
)
def test_status_expectation(value: Any, accepted: set[int], rejected: set[int], text: str) -> None:
    matcher = StatusMatcher.parse(value)
    assert all(code in matcher for code in accepted)
    assert not any(code in matcher for code in rejected)
    assert str(matcher) == text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (700, "invalid status 700: must be 100..599"),
        (99, "invalid status 99: must be 100..599"),
        ("6xx", "invalid status '6xx'"),
        ("2XX", "invalid status '2XX'"),
        ("200", "invalid status '200'"),
        (200.0, "invalid status 200.0"),
        (True, "invalid status True"),
        ([], "status list is empty"),
        ([200, None], "invalid status None"),
        ({"code": 200}, "invalid status {'code': 200}"),
    ],
)
def test_invalid_status(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        StatusMatcher.parse(value)
