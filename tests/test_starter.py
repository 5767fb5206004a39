"""`uptime-probe init [URL]`: a commented starter probes.yaml that validates, pointed at the
URL given, written only where no file is."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from uptime_probe.config import load_config
from uptime_probe.starter import EXAMPLE_CONFIG, SIMULATOR_URL

JOURNEYS = ["chat_load", "history_sidebar", "task_creation", "chat_answer", "sidebar_renders"]


async def init(*args: str, cwd: Path) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPTIME_PROBE_", "CHAT_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uptime_probe.cli", "init", *args,
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    ("args", "url"),
    [
        (["https://chat.example.com/api/"], "https://chat.example.com/api"),
        (["http://10.0.0.7:8080"], "http://10.0.0.7:8080"),
        ([], SIMULATOR_URL),
    ],
    ids=["https-path", "http-port", "default"],
)
async def test_init_writes_a_starter_that_validates(
    tmp_path: Path, args: list[str], url: str
) -> None:
    code, out, err = await init(*args, cwd=tmp_path)
    assert (code, err) == (0, "")
    written = tmp_path / "probes.yaml"
    assert f"wrote probes.yaml: 4 example journeys against {url}" in out

    config = load_config(written, env={})  # as `validate` loads it, with no environment
    assert [check.name for check in config.checks] == JOURNEYS
    assert config.variables["base_url"] == url
    assert config.status_page.title == f"{url.split('//')[1].split(':')[0].split('/')[0]} status"
    text = written.read_text()
    assert text.startswith(
        f"# uptime-probe starter configuration, written by `uptime-probe init` for {url}.\n"
    )
    assert "export CHAT_API_TOKEN" in text
    # The journeys are the example's, comments and all: only the header and two values differ.
    example = EXAMPLE_CONFIG.read_text()
    assert text.count("\n#") > 10
    assert example.split("\nchecks:\n")[1] == text.split("\nchecks:\n")[1]


async def test_init_never_overwrites(tmp_path: Path) -> None:
    existing = tmp_path / "probes.yaml"
    existing.write_text("# mine\n")
    other = tmp_path / "mine.yaml"
    other.symlink_to(tmp_path / "missing-target.yaml")  # a dangling link is a file too
    for args in (["https://chat.example.com"], ["-c", "mine.yaml"]):
        code, out, err = await init(*args, cwd=tmp_path)
        assert code == 2
        assert out == ""
        assert "exists; init never overwrites a file" in err
    assert existing.read_text() == "# mine\n"
    assert not (tmp_path / "missing-target.yaml").exists()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("chat.example.com", "is not an http:// or https:// URL with a host"),
        ("ftp://chat.example.com", "is not an http:// or https:// URL with a host"),
        ("https://user:pw@chat.example.com", "the URL holds credentials"),
        ("https://chat.example.com/?x=1", "without a query or fragment"),
        ("https://chat.example.com/${HOME}", "holds characters a URL cannot"),
        ('https://chat.example.com/"}', "holds characters a URL cannot"),
    ],
)
async def test_init_refuses_a_url_it_cannot_use(tmp_path: Path, url: str, why: str) -> None:
    code, _out, err = await init(url, cwd=tmp_path)
    assert code == 2
    assert why in err
    assert not (tmp_path / "probes.yaml").exists()


async def test_init_into_a_missing_folder(tmp_path: Path) -> None:
    code, _out, err = await init("-c", "nowhere/probes.yaml", cwd=tmp_path)
    assert code == 2
    assert "error: cannot write nowhere/probes.yaml: No such file or directory" in err
