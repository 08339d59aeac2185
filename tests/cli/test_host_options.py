"""``rdesk host`` options become :class:`HostSettings`: each flag's default is the field's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rdesk.cli import build_parser
from rdesk.cli.host import host_settings
from rdesk.host.settings import CAPTURE_BACKENDS, HostSettings


def _settings(*flags: str) -> HostSettings:
    args = build_parser().parse_args(["host", *flags, "--config-dir", "/cfg"])
    return host_settings(args)


def test_defaults_are_the_settings_defaults() -> None:
    made = _settings()
    default = HostSettings(config_dir=Path("/cfg"))
    assert made == default, [
        (f.name, getattr(made, f.name), getattr(default, f.name))
        for f in dataclasses.fields(HostSettings)
        if getattr(made, f.name) != getattr(default, f.name)
    ]
    assert made.capture == "auto"


@pytest.mark.parametrize("capture", CAPTURE_BACKENDS)
def test_capture(capture: str) -> None:
    assert _settings("--capture", capture).capture == capture


def test_flags_reach_their_fields() -> None:
    made = _settings("--virtual", "320x240", "--capture", "mss", "--port", "0", "--tls12",
                     "--max-fps", "30", "--max-bandwidth", "10M", "--invite", "view:5",
                     "--allow-origin", "https://a.example:8443/", "--record", "/rec",
                     "--record-input", "--record-clipboard", "--require-client-cert", "--consent",
                     "ask")
    assert (made.virtual, made.capture, made.port, made.allow_tls12) == ((320, 240), "mss", 0,
                                                                         True)
    assert (made.max_fps, made.max_bandwidth, made.invites) == (30.0, 10_000_000,
                                                                (("view", 5.0),))
    assert made.allowed_origins == ("https://a.example:8443",)
    assert (made.record_dir, made.record_input, made.record_clipboard) == (Path("/rec"), True,
                                                                           True)
    assert (made.require_client_cert, made.consent) == (True, "ask")
