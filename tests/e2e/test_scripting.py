"""Issue 18's scripting verbs end to end: ``rdesk do`` (several actions, one login; keydown and
keyup), ``rdesk drag`` and ``rdesk expect`` against a real host, the effects seen by a real X
client (:class:`~tests.xserver.Recorder`) or on the real screen."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from rdesk.cli import exits
from rdesk.host.input.inject import PynputInjector
from tests.e2e.conftest import RunningHost
from tests.xserver import Recorder, Xvfb, grab_root, pressed_keys, wait_until

Cli = Callable[..., subprocess.CompletedProcess[str]]
SHIFT = 1
W, H = 800, 600


@pytest.fixture
def desk(
    xvfb_factory: Callable[..., Xvfb],
    injectors: Callable[[str], PynputInjector],
    host_factory: Callable[..., RunningHost],
) -> Iterator[tuple[RunningHost, Recorder, str]]:
    xvfb = xvfb_factory(W, H)
    host = host_factory(xvfb.display, injector=injectors)
    with Recorder(xvfb.display) as recorder:
        yield host, recorder, xvfb.display


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)


def test_do_types_presses_and_snapshots_on_one_login(
    desk: tuple[RunningHost, Recorder, str], rdesk_cli: Cli, tmp_path: Path,
) -> None:
    host, recorder, display = desk
    before = host.server.auth_attempts
    shot = tmp_path / "s.png"
    _ok(rdesk_cli("do", host.url, "type", "hello", "key", "Return", "snapshot", "-o", str(shot),
                  *host.viewer_args()))
    assert recorder.wait_for_text("hello\r") == "hello\r"
    assert host.server.auth_attempts == before + 1  # one connection for all the actions
    with Image.open(shot) as image:
        assert image.size == (W, H)
    assert wait_until(lambda: not pressed_keys(display), 5)


def test_do_keydown_holds_until_keyup(
    desk: tuple[RunningHost, Recorder, str], rdesk_cli: Cli
) -> None:
    host, recorder, display = desk
    _ok(rdesk_cli("do", host.url, "keydown", "shift", "click", "10", "10", "click", "50", "50",
                  "keyup", "shift", "click", "90", "90", *host.viewer_args()))
    events = recorder.wait_for_events(
        lambda evs: sum(e["type"] == "button_release" for e in evs) >= 3
    )
    presses = [e for e in events if e["type"] == "button_press"]
    assert [(e["x"], e["y"]) for e in presses] == [(10, 10), (50, 50), (90, 90)]
    assert [bool(e["state"] & SHIFT) for e in presses] == [True, True, False]
    assert wait_until(lambda: not pressed_keys(display), 5)


def test_do_releases_a_key_left_down(
    desk: tuple[RunningHost, Recorder, str], rdesk_cli: Cli
) -> None:
    host, recorder, display = desk
    _ok(rdesk_cli("do", host.url, "keydown", "ctrl", *host.viewer_args()))
    events = recorder.wait_for_events(lambda evs: any(e["type"] == "key_release" for e in evs))
    assert [e["type"] for e in events if e["type"].startswith("key")] == ["key_press",
                                                                          "key_release"]
    assert wait_until(lambda: not pressed_keys(display), 5)


def test_drag_presses_moves_and_releases(
    desk: tuple[RunningHost, Recorder, str], rdesk_cli: Cli
) -> None:
    host, recorder, _ = desk
    _ok(rdesk_cli("drag", host.url, "100", "100", "300", "200", *host.viewer_args()))
    events = recorder.wait_for_events(lambda evs: any(e["type"] == "button_release"
                                                      for e in evs))
    press = next(e for e in events if e["type"] == "button_press")
    release = next(e for e in events if e["type"] == "button_release")
    assert (press["button"], press["x"], press["y"]) == (1, 100, 100)
    assert (release["button"], release["x"], release["y"]) == (1, 300, 200)
    between = events.index(press) < events.index(release)
    moves = [e for e in events[events.index(press):events.index(release)]
             if e["type"] == "motion"]
    assert between and len(moves) >= 2  # the pointer travelled with the button down


def test_expect_matches_and_times_out(
    desk: tuple[RunningHost, Recorder, str], rdesk_cli: Cli, tmp_path: Path,
) -> None:
    host, _, display = desk
    region = grab_root(display, (50, 60, 150, 140))
    ref = tmp_path / "ref.png"
    region.save(ref)
    result = rdesk_cli("expect", host.url, str(ref), "--at", "50,60", "--wait", "20",
                       *host.viewer_args())
    _ok(result)
    assert "matched at 50,60" in result.stdout
    wrong = tmp_path / "wrong.png"
    ImageOps.invert(region.convert("RGB")).save(wrong)
    result = rdesk_cli("expect", host.url, str(wrong), "--at", "50,60", "--wait", "1",
                       *host.viewer_args())
    assert result.returncode == exits.NO_MATCH, (result.stdout, result.stderr)
    [line] = result.stderr.splitlines()
    assert line.startswith("rdesk: error: ") and "did not match at 50,60" in line
    off = rdesk_cli("expect", host.url, str(ref), "--at", "750,560", "--wait", "1",
                    *host.viewer_args())
    assert off.returncode == 1 and "does not fit the 800x600 screen" in off.stderr


def test_snapshot_json_is_one_line_for_scripts(
    desk: tuple[RunningHost, Recorder, str], rdesk_cli: Cli, tmp_path: Path
) -> None:
    host, _, _ = desk
    shot = tmp_path / "s.png"
    result = rdesk_cli("snapshot", host.url, "-o", str(shot), "--json", *host.viewer_args())
    _ok(result)
    [line] = result.stdout.splitlines()
    assert json.loads(line) == {"file": str(shot), "width": W, "height": H,
                                "host": "127.0.0.1:" + str(host.port),
                                "fingerprint": host.fingerprint}
