"""The shared codec vectors (tests/vectors/protocol.json) against the Python reference codec.

The same file is checked against the browser's rdesk/web/core/protocol.js in Chromium by
tests/e2e/test_browser.py, which keeps the two implementations in step.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from rdesk.protocol import codec
from rdesk.protocol.errors import RemoteProtocolError
from tests.vectors import make_vectors

VECTORS: list[dict[str, Any]] = json.loads(make_vectors.OUT.read_text(encoding="utf-8"))


def test_vector_file_is_up_to_date() -> None:
    """protocol.json is what make_vectors.py writes now (regenerate it after a change)."""
    assert make_vectors.OUT.read_text(encoding="utf-8") == make_vectors.render(
        make_vectors.build()
    ), "run: python tests/vectors/make_vectors.py"


def test_vectors_cover_both_kinds_and_outcomes() -> None:
    kinds = {(v["kind"], v["valid"]) for v in VECTORS}
    assert kinds == {("control", True), ("control", False), ("update", True), ("update", False)}


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(vector: dict[str, Any]) -> None:
    if vector["kind"] == "control":
        decode = lambda: codec.decode(vector["wire"])  # noqa: E731
    else:
        data = base64.b64decode(vector["wire"])
        screen = tuple(vector["screen"]) if "screen" in vector else None
        decode = lambda: make_vectors.receive_update(data, screen)  # noqa: E731
    if vector["valid"]:
        message = decode()
        assert make_vectors.decoded_form(message) == vector["decoded"]
        # What decodes must encode back to something that decodes the same.
        assert make_vectors.decoded_form(codec.decode(codec.encode(message))) == vector["decoded"]
    else:
        with pytest.raises(RemoteProtocolError) as info:
            decode()
        assert int(info.value.code) == vector["code"]
