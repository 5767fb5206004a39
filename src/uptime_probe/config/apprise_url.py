"""An Apprise URL in `probes.yaml` (`kind: apprise`, `urls:`): a secret, accepted at load
only when Apprise can send to it.

Apprise URLs carry tokens and passwords (`discord://id/token`, `mailto://user:pw@host`),
so no message here quotes one, or any part of one but its scheme. Apprise itself is
imported only when a config has such a URL: loading it and its plugins costs about 0.7 s,
which configs without one never pay.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any
from urllib.parse import unquote, urlsplit

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31})://")
NOT_SHOWN = "the URL is a secret: not shown"


@functools.cache
def quiet_apprise() -> Any:
    """The `apprise` module, its own log records kept away from ours and from stderr.

    Apprise logs what it could not load or send, URL parts included (masked, but only
    as well as Apprise knows each service); delivery reads its outcome, never its text.
    """
    import apprise

    logging.getLogger("apprise").propagate = False
    return apprise


def apprise_asset(timeout: float | None = None) -> Any:
    """Apprise's settings for us: nothing on disk, no plugins from the home folder, and
    `timeout` as its own bound on one service."""
    apprise = quiet_apprise()
    settings: dict[str, Any] = {"app_id": "uptime-probe", "storage_mode": "memory"}
    if timeout is not None:
        settings["service_timeout"] = timeout
    return apprise.AppriseAsset(**settings)


# Cached: every load and reload of the same config checks the same URLs, and building a
# service costs about 6 ms, in the event loop on a reload.
@functools.lru_cache(maxsize=256)
def _apprise_accepts(url: str) -> bool:
    apprise = quiet_apprise()
    return apprise.Apprise.instantiate(url, asset=apprise_asset()) is not None


def check_apprise_url(value: str) -> str:
    scheme = _SCHEME.match(value.strip())
    if scheme is None:
        raise ValueError(
            "not an Apprise URL: it starts with a service's scheme, like json://, "
            f"mailto:// or discord:// ({NOT_SHOWN})"
        )
    if not _apprise_accepts(value.strip()):
        raise ValueError(
            f"Apprise cannot send to this {scheme.group(1).lower()}:// URL: the scheme is "
            f"unknown, or a part the service needs is missing or malformed ({NOT_SHOWN}; "
            "`apprise --details` lists the schemes and their parts)"
        )
    return value.strip()


# Shorter parts are not worth redacting from every log line (a 4-digit port, `yes`).
MIN_PRIVATE_PART = 6
_URL_PARTS = re.compile(r"[/:@?&=,+]+")


@functools.lru_cache(maxsize=256)
def cached_url_secrets(url: str) -> tuple[str, ...]:
    """`apprise_url_secrets`, once per URL: the log redactor is rebuilt on every reload."""
    return tuple(apprise_url_secrets(url))


def apprise_url_secrets(url: str) -> list[str]:
    """What to redact for one Apprise URL: the URL, and each part Apprise itself treats as
    private (a token, a password, an API key: those its `privacy` rendering masks).

    The private parts are where the URL Apprise writes back with privacy differs from the
    one without, part by part; when the two do not line up, the URL alone is returned.
    """
    secrets = [url]
    password = urlsplit(url).password
    if password:
        secrets.append(unquote(password))
    apprise = quiet_apprise()
    plugin = apprise.Apprise.instantiate(url, asset=apprise_asset())
    if plugin is None:
        return secrets
    plain = _URL_PARTS.split(plugin.url(privacy=False))
    masked = _URL_PARTS.split(plugin.url(privacy=True))
    if len(plain) == len(masked):
        secrets += [unquote(p) for p, m in zip(plain, masked, strict=True) if p != m]
    return [secret for secret in dict.fromkeys(secrets) if len(secret) >= MIN_PRIVATE_PART]
