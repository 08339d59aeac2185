"""The viewer verbs against a real host, run as on a viewer-only install: the host extra's
modules cannot be imported (tests/cli/without_host_extra.py), and none is even looked up.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from rdesk.host.input.inject import PynputInjector
from tests.cli.viewer_only import Run, rdesk_without_host_extra
from tests.e2e.conftest import RunningHost
from tests.xserver import Painter, Recorder, Xvfb, assert_images_equal, grab_root, wait_until


def _ok(run: Run) -> None:
    assert run.result.returncode == 0, (run.result.stdout, run.result.stderr)
    assert run.blocked == []


def test_snapshot_and_watch(xvfb: Xvfb, host: RunningHost, tmp_path: Path) -> None:
    with Painter(xvfb.display, seed=12) as painter:
        out = tmp_path / "shot.png"
        _ok(rdesk_without_host_extra(tmp_path, "snapshot", host.url, *host.viewer_args(),
                                     "-o", str(out)))
        with Image.open(out) as image:
            shot = image.convert("RGB")
        assert_images_equal(shot, grab_root(xvfb.display))
        assert_images_equal(shot, painter.expected())
        watch = rdesk_without_host_extra(tmp_path, "watch", host.url, *host.viewer_args(),
                                         "--duration", "1.5", "--json")
        _ok(watch)
        lines = [json.loads(line) for line in watch.result.stdout.splitlines()]
        assert lines and all(isinstance(line, dict) for line in lines)


def test_type_and_click_reach_an_x_client(
    xvfb_factory: Callable[..., Xvfb],
    injectors: Callable[[str], PynputInjector],
    host_factory: Callable[..., RunningHost],
    tmp_path: Path,
) -> None:
    xvfb = xvfb_factory(400, 300)
    host = host_factory(xvfb.display, injector=injectors)
    with Recorder(xvfb.display) as recorder:
        text = "viewer only: Hello!"
        _ok(rdesk_without_host_extra(tmp_path, "type", host.url, text, *host.viewer_args()))
        assert recorder.wait_for_text(text) == text
        _ok(rdesk_without_host_extra(tmp_path, "click", host.url, "123", "45",
                                     "--button", "right", *host.viewer_args()))
        assert wait_until(lambda: (3, 123, 45) in recorder.buttons(), 10), recorder.buttons()
