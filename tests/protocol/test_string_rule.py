"""Issue 20: wire strings refuse C1 controls and bidi embeddings, overrides and isolates.

The rule is docs/protocol.md §2; rdesk/web/core/codec.js mirrors it, checked in Chromium
through the shared vectors (tests/vectors/protocol.json, tests/e2e/test_browser.py).
"""

from __future__ import annotations

import json

import pytest

from rdesk.protocol import codec
from rdesk.protocol.errors import RemoteProtocolError
from rdesk.protocol.fields import Str

REFUSED = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F),
           *range(0x2066, 0x206A)]
#: The neighbours of each refused range, and the bidi marks, which pass.
ALLOWED = [0x20, 0x7E, 0xA0, 0x2029, 0x202F, 0x2065, 0x206A, 0x200E, 0x200F, 0x061C, 0xE9]


@pytest.mark.parametrize("code", REFUSED, ids=[f"U+{c:04X}" for c in REFUSED])
def test_refused_code_points(code: int) -> None:
    field = Str(max_len=16)
    assert field.check(f"a{chr(code)}b") == "a string without control characters"
    with pytest.raises(RemoteProtocolError):
        codec.decode(f'{{"t":"close","code":1000,"reason":"a\\u{code:04x}b"}}')


@pytest.mark.parametrize("code", ALLOWED, ids=[f"U+{c:04X}" for c in ALLOWED])
def test_allowed_code_points(code: int) -> None:
    assert Str(max_len=16).check(f"a{chr(code)}b") is None


def test_the_attack_battery_names_are_refused_raw_and_escaped() -> None:
    for name in ("x\u009b31my", "a\u009d0;t\u009cb", "a\u0085b", "invoice\u202efdp.exe",
                 "\u2066isolated"):
        for wire in (json.dumps(name, ensure_ascii=False), json.dumps(name)):
            with pytest.raises(RemoteProtocolError):
                codec.decode(f'{{"t":"close","code":1000,"reason":{wire}}}')
