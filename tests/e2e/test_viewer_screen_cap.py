"""``--max-screen`` (issue 20): a viewer refuses a host whose screen has more pixels than it
accepts, from the flag or the ``[viewer]`` section, with one line and exit status 7 (refused
by policy), before allocating that screen; a limit the screen fits lets it in.

The host is the real one, on Xvfb (the ``xvfb`` fixture's screen), over real TLS.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from rdesk.cli import exits
from tests.e2e.conftest import RunningHost
from tests.xserver import Xvfb

Cli = Callable[..., subprocess.CompletedProcess[str]]


def test_a_screen_over_the_flag_is_refused_with_one_line(
    xvfb: Xvfb, host: RunningHost, rdesk_cli: Cli, tmp_path: Path
) -> None:
    width, height = xvfb.width, xvfb.height
    small = f"{width // 2}x{height // 2}"
    result = rdesk_cli("snapshot", host.url, "-o", str(tmp_path / "x.png"),
                       "--max-screen", small, *host.viewer_args())
    assert result.returncode == exits.REFUSED, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{width}x{height}" in lines[0] and "limit" in lines[0], lines
    assert not (tmp_path / "x.png").exists()
    fits = rdesk_cli("snapshot", host.url, "-o", str(tmp_path / "y.png"),
                     "--max-screen", f"{width}x{height}", *host.viewer_args())
    assert fits.returncode == 0, fits.stderr
    assert (tmp_path / "y.png").exists()


def test_the_viewer_section_sets_the_cap_and_the_flag_overrides_it(
    xvfb: Xvfb, host: RunningHost, rdesk_cli: Cli, tmp_path: Path
) -> None:
    width, height = xvfb.width, xvfb.height
    config = tmp_path / "viewer-config"  # rdesk_cli's --config-dir
    config.mkdir(exist_ok=True)
    (config / "config.toml").write_text(f'[viewer]\nmax-screen = "{width - 1}x{height}"\n')
    refused = rdesk_cli("type", host.url, "x", *host.viewer_args())
    assert refused.returncode == exits.REFUSED, (refused.returncode, refused.stderr)
    assert len(refused.stderr.strip().splitlines()) == 1
    allowed = rdesk_cli("snapshot", host.url, "-o", str(tmp_path / "z.png"),
                        "--max-screen", f"{width}x{height}", *host.viewer_args())
    assert allowed.returncode == 0, allowed.stderr


def test_a_bad_value_is_a_usage_error(rdesk_cli: Cli) -> None:
    result = rdesk_cli("snapshot", "wss://127.0.0.1:9", "-o", "x.png", "--max-screen", "huge")
    assert result.returncode == exits.USAGE
    assert "WIDTHxHEIGHT" in result.stderr
