"""The example config the package carries: `uptime-probe demo` runs it when given no
`-c`, and `uptime-probe init` writes a starter `probes.yaml` from it.

One file, `examples/probes.yaml` in the package: the repository's `probes.yaml` is a
symbolic link to it, and the image copies it to /etc/uptime-probe/. So the journeys the
demo probes, the ones the image ships and the ones `init` starts a user with never drift.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from uptime_probe.config import parse_config

# A path on disk, not an importlib.resources Traversable: the daemon watches its config
# file for changes, and the package is always installed as files (a wheel, or the tree).
EXAMPLE_CONFIG = Path(__file__).resolve().parent / "examples" / "probes.yaml"

SIMULATOR_URL = "http://127.0.0.1:8765"
# The lines `init` rewrites; tests/test_starter.py fails when the example loses one.
_HEADER_END = "\n\n"
_BASE_URL = f'base_url: "${{CHAT_BASE_URL:-{SIMULATOR_URL}}}"'
_TITLE = 'title: "SimChat status"'
# RFC 3986's characters, less `$` (the loader expands `${...}`) and those that would end
# the YAML string or the `${VAR:-default}` it sits in.
_URL_CHARS = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!&'()*+,;=%-]+")

_STARTER_HEADER = """\
# uptime-probe starter configuration, written by `uptime-probe init` for {url}.
#
# Five example journeys against that service: a page that loads and is the real page,
# a list that is not empty (200 OK with nothing in it is `empty_history`, not "up"), a
# task that is created and completes, an answer streamed without stalling, and that list
# as a real browser renders it (skipped, and said so, where Chromium is missing). Adapt
# them to your API:
#   uptime-probe validate -c {file}   # every problem, located; exit 2
#   uptime-probe check -c {file}      # run each check once; exit 1 if any is down
#   uptime-probe run -c {file}        # the daemon: /metrics and the status page on :9713
# The API token comes from the environment: export CHAT_API_TOKEN=... (never write it
# here); CHAT_BASE_URL, when set, overrides the URL below.
# Every key is documented in docs/configuration.md; `uptime-probe schema` prints a JSON
# Schema your editor can use for completion.
"""


def base_url(text: str) -> str:
    """The URL `init` points the journeys at: http(s), a host, no credentials, no query."""
    url = text.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the URL holds credentials: give them as a secret, never in the URL")
    if "?" in url or "#" in url:
        raise ValueError("give the service's base URL, without a query or fragment")
    if not _URL_CHARS.fullmatch(url):
        raise ValueError(f"{text!r} holds characters a URL cannot (percent-encode them)")
    return url


def starter_config(url: str, file: str = "probes.yaml") -> str:
    """The example config with its header for a new user and its journeys pointed at `url`
    (already checked by `base_url`)."""
    example = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    _example_header, found, body = example.partition(_HEADER_END)
    if not found or _BASE_URL not in body or _TITLE not in body:
        raise RuntimeError(f"{EXAMPLE_CONFIG} no longer has the lines init rewrites")
    host = urlsplit(url).hostname or url
    body = body.replace(_BASE_URL, f'base_url: "${{CHAT_BASE_URL:-{url}}}"', 1)
    body = body.replace(_TITLE, f'title: "{host} status"', 1)
    return _STARTER_HEADER.format(url=url, file=file) + "\n" + body


def write_starter(path: Path, url: str) -> str:
    """Write the starter config to `path`, never over an existing file (FileExistsError).

    It is loaded before it is written, as `uptime-probe validate` would load it, so a file
    `init` writes always validates.
    """
    text = starter_config(url, path.name)
    parse_config(text, source=path.name, base_dir=path.parent, env={})
    with path.open("x", encoding="utf-8") as handle:
        handle.write(text)
    return text
