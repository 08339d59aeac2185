"""The shared H.264 vectors (tests/vectors/h264.json) against the Python SPS parser.

The same file is checked against the browser's rdesk/web/core/h264.js under Node by
tests/web/h264.test.mjs, which keeps the two parsers in step.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import pytest

from rdesk.protocol.h264 import H264Error, check_key_unit, parse_sps
from tests.vectors.make_h264_vectors import OUT

VECTORS: list[dict[str, Any]] = json.loads(OUT.read_text(encoding="utf-8"))


def test_vectors_cover_both_kinds_and_outcomes() -> None:
    outcomes = {(v["kind"], v["expect"] == "error") for v in VECTORS}
    assert outcomes == {("sps", True), ("sps", False), ("key", True), ("key", False)}
    assert any(v["name"].startswith("libx264") and v["expect"] != "error" for v in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(vector: dict[str, Any]) -> None:
    data = base64.b64decode(vector["data"])
    try:
        if vector["kind"] == "sps":
            sps = parse_sps(data)
        else:
            sps = check_key_unit(data, tuple(vector["size"]))
    except H264Error:
        assert vector["expect"] == "error"
        return
    assert dataclasses.asdict(sps) == vector["expect"]
