"""Whether browser steps can run here: Playwright importable, a Chromium binary found.

Checked when a config with browser steps loads, so a missing browser is a located config
error (or, with `browser.when_missing: skip`, a note), never a failure of every run. A
config without browser steps never looks.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

# Searched on PATH in this order when `browser.executable` is not set.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
INSTALL_HINT = (
    "install them with `pip install 'uptime-probe[browser]'` (Playwright) and "
    "`apt-get install chromium` (Debian, Ubuntu), or set browser.executable; Playwright's "
    "own browser download is not needed"
)


def find_chromium(configured: str | None) -> str | None:
    """The absolute path of the Chromium to run, or None when there is none."""
    if configured is not None:
        found = shutil.which(configured)
        return os.path.abspath(found) if found else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return os.path.abspath(found)
    return None


def playwright_installed() -> bool:
    try:
        return importlib.util.find_spec("playwright") is not None
    except (ImportError, ValueError):  # a broken or half-removed installation
        return False


def what_is_missing(configured: str | None) -> tuple[str | None, list[str]]:
    """The Chromium found (or None), and what is missing, in words (empty: nothing)."""
    missing = []
    if not playwright_installed():
        missing.append("Playwright is not installed")
    executable = find_chromium(configured)
    if executable is None:
        if configured is not None:
            missing.append(f"browser.executable {configured!r} is not an executable file")
        else:
            missing.append(f"no Chromium on PATH (looked for {', '.join(CHROMIUM_NAMES)})")
    return executable, missing
