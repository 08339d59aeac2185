"""Write ``tests/vectors/protocol.json``: codec test vectors from the Python reference codec.

Run ``python tests/vectors/make_vectors.py`` after changing the protocol and commit the JSON.
Both implementations are checked against the file: the Python codec by
``tests/protocol/test_vectors.py`` (which also checks the file is up to date) and the
browser's ``rdesk/web/core/protocol.js`` by ``tests/e2e/test_browser.py`` in Chromium.

Each vector is ``{name, kind, wire, valid, decoded?, code?, screen?}``:

- ``kind``: ``"control"`` (``wire`` is the text message) or ``"update"`` (``wire`` is the
  binary message in standard base64);
- ``valid``: whether a viewer must accept it; ``code``: the close code a refusal uses;
- ``decoded`` (valid only): a control message as ``{"t": ..., fields...}``; an update as
  ``{seq, timestamp_us (a decimal string: it is a u64), exact, rects: [{x, y, w, h,
  encoding, payload (base64)}]}``;
- ``screen`` (updates only, optional): ``[width, height]`` of the viewer's screen: the update
  is then received by a viewer session welcomed with that size, so the screen-bound checks of
  docs/protocol.md §4 apply as well as the codec's.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import struct
import sys
from pathlib import Path
from typing import Any

from rdesk.protocol import codec, limits
from rdesk.protocol.errors import RemoteProtocolError
from rdesk.protocol.messages import PROTOCOL_VERSION, Auth, Welcome
from rdesk.protocol.session import Session
from rdesk.protocol.states import Role
from rdesk.protocol.updates import Update

OUT = Path(__file__).with_name("protocol.json")
NONCE = base64.b64encode(bytes(range(16))).decode()


def decoded_form(message: object) -> dict[str, Any]:
    """The JSON form of a decoded message, as the vectors spell it."""
    if isinstance(message, Update):
        return {
            "seq": message.seq,
            "timestamp_us": str(message.timestamp_us),
            "exact": message.exact,
            "rects": [
                {
                    "x": r.x,
                    "y": r.y,
                    "w": r.w,
                    "h": r.h,
                    "encoding": int(r.encoding),
                    "payload": base64.b64encode(r.payload).decode(),
                }
                for r in message.rects
            ],
        }
    # A field left out (fields.MayOmit) is no member, as the browser's decoder leaves it.
    fields = dataclasses.asdict(message)  # type: ignore[call-overload]
    return {"t": type(message).T, **{k: v for k, v in fields.items() if v is not None}}  # type: ignore[attr-defined]


# --- control vectors ---------------------------------------------------------------------------

HELLO = (
    '{"t":"hello","protocol":"rdesk","version":1,"nonce":"' + NONCE + '",'
    '"methods":"password","server":"rdesk/0.1.0"}'
)
WELCOME = '{"t":"welcome","role":"view","viewer_id":7,"width":640,"height":480,"name":"lab"}'
PING = '{"t":"ping","id":1}'
PADDED_PING_LEN = limits.MAX_CONTROL_MESSAGE - len(PING)

CONTROL: list[tuple[str, str]] = [
    ("hello", HELLO),
    ("welcome view", WELCOME),
    ("welcome control", WELCOME.replace('"view"', '"control"')),
    ("screen", '{"t":"screen","width":1,"height":16384}'),
    ("ping max id", '{"t":"ping","id":4294967295}'),
    ("pong", '{"t":"pong","id":0}'),
    ("input_ack", '{"t":"input_ack","id":3,"ok":false,"reason":"view-only"}'),
    ("close", '{"t":"close","code":4001,"reason":"wrong password"}'),
    ("ack", '{"t":"ack","seq":12}'),
    ("ack with hold", '{"t":"ack","seq":12,"hold_us":20500}'),
    ("ack hold 0", '{"t":"ack","seq":12,"hold_us":0}'),
    ("ack hold at the limit", '{"t":"ack","seq":12,"hold_us":10000000}'),
    ("ack hold over the limit", '{"t":"ack","seq":12,"hold_us":10000001}'),
    ("ack hold negative", '{"t":"ack","seq":12,"hold_us":-1}'),
    ("ack hold null", '{"t":"ack","seq":12,"hold_us":null}'),
    ("ack hold float", '{"t":"ack","seq":12,"hold_us":1.5}'),
    ("ack_hold", '{"t":"ack_hold"}'),
    ("ack_hold with a field", '{"t":"ack_hold","hold_us":1}'),
    ("pointer", '{"t":"pointer","x":16383,"y":0,"buttons":255}'),
    ("wheel", '{"t":"wheel","x":1,"y":2,"dx":-100,"dy":100}'),
    ("key", '{"t":"key","keysym":536870911,"down":true}'),
    ("sync", '{"t":"sync","id":9}'),
    ("refresh", '{"t":"refresh"}'),
    ("field order free", '{"id":5,"t":"ping"}'),
    ("whitespace", ' \t\r\n{ "t" : "ping" , "id" : 5 }\n '),
    ("negative zero is the integer 0", '{"t":"ping","id":-0}'),
    ("escapes in strings", '{"t":"close","code":1000,"reason":"a\\"b\\\\c\\/d \\u00e9"}'),
    ("surrogate pair escape is one character",
     '{"t":"close","code":1000,"reason":"\\ud83d\\ude00"}'),
    ("256 astral characters", '{"t":"close","code":1000,"reason":"' + "😀" * 256 + '"}'),
    ("257 astral characters", '{"t":"close","code":1000,"reason":"' + "😀" * 257 + '"}'),
    ("256 characters", '{"t":"close","code":1000,"reason":"' + "é" * 256 + '"}'),
    ("257 characters", '{"t":"close","code":1000,"reason":"' + "x" * 257 + '"}'),
    ("nonce 23 characters", HELLO.replace(NONCE, NONCE[:-1])),
    ("nonce 25 characters", HELLO.replace(NONCE, NONCE + "A")),
    ("exactly the size limit", '{"t":"ping","id":1' + " " * PADDED_PING_LEN + "}"),
    ("one byte over the size limit", '{"t":"ping","id":1' + " " * (PADDED_PING_LEN + 1) + "}"),
    ("over the limit in UTF-8 bytes only", '{"t":"ping","id":1,"x":"' + "é" * 8200 + '"}'),
    ("not JSON", "ping"),
    ("empty", ""),
    ("trailing comma", '{"t":"ping","id":1,}'),
    ("single quotes", "{'t':'ping','id':1}"),
    ("trailing data", '{"t":"ping","id":1}x'),
    ("two objects", '{"t":"ping","id":1}{"t":"ping","id":1}'),
    ("leading zero", '{"t":"ping","id":01}'),
    ("plus sign", '{"t":"ping","id":+1}'),
    ("byte order mark", '\ufeff{"t":"ping","id":1}'),
    ("raw control character in string", '{"t":"close","code":1000,"reason":"a\tb"}'),
    ("escaped control character", '{"t":"close","code":1000,"reason":"a\\u0001b"}'),
    ("escaped DEL", '{"t":"close","code":1000,"reason":"a\\u007fb"}'),
    ("escaped C1 NEL", '{"t":"close","code":1000,"reason":"a\\u0085b"}'),
    ("raw C1 CSI", '{"t":"close","code":1000,"reason":"a\u009b31mb"}'),
    ("first C1 control", '{"t":"close","code":1000,"reason":"a\\u0080b"}'),
    ("last C1 control", '{"t":"close","code":1000,"reason":"a\\u009fb"}'),
    ("bidi embedding", '{"t":"close","code":1000,"reason":"a\\u202ab"}'),
    ("bidi override", '{"t":"close","code":1000,"reason":"report\u202efdp.exe"}'),
    ("bidi isolate", '{"t":"close","code":1000,"reason":"a\\u2066b"}'),
    ("bidi pop isolate", '{"t":"close","code":1000,"reason":"a\\u2069b"}'),
    ("bidi marks and no-break space pass",
     '{"t":"close","code":1000,"reason":"a\\u200e\\u200f\\u061c\\u00a0\\u2029\\u202f'
     '\\u2065\\u206ab"}'),
    ("lone high surrogate", '{"t":"close","code":1000,"reason":"\\ud800"}'),
    ("lone low surrogate", '{"t":"close","code":1000,"reason":"x\\udc00"}'),
    ("reversed surrogates", '{"t":"close","code":1000,"reason":"\\ude00\\ud83d"}'),
    ("bad escape", '{"t":"close","code":1000,"reason":"\\x41"}'),
    ("array", "[1,2]"),
    ("string", '"ping"'),
    ("number", "1"),
    ("null", "null"),
    ("no t", '{"id":1}'),
    ("t not a string", '{"t":1,"id":1}'),
    ("t null", '{"t":null}'),
    ("unknown t", '{"t":"pingg","id":1}'),
    ("t wrong case", '{"t":"Ping","id":1}'),
    ("t inherited name", '{"t":"constructor"}'),
    ("t __proto__", '{"t":"__proto__"}'),
    ("missing field", '{"t":"pointer","x":1,"y":2}'),
    ("extra field", '{"t":"ping","id":1,"extra":0}'),
    ("extra field __proto__", '{"t":"ping","id":1,"__proto__":{}}'),
    ("duplicate key", '{"t":"ping","id":1,"id":2}'),
    ("duplicate t", '{"t":"ping","t":"ping","id":1}'),
    ("duplicate key nested", '{"t":"ping","id":1,"x":{"a":1,"a":1}}'),
    ("float", '{"t":"ping","id":1.0}'),
    ("exponent", '{"t":"ping","id":1e0}'),
    ("negative exponent", '{"t":"ping","id":10E-1}'),
    ("NaN", '{"t":"ping","id":NaN}'),
    ("Infinity", '{"t":"ping","id":Infinity}'),
    ("-Infinity", '{"t":"ping","id":-Infinity}'),
    ("true as integer", '{"t":"ping","id":true}'),
    ("string as integer", '{"t":"ping","id":"1"}'),
    ("null as integer", '{"t":"ping","id":null}'),
    ("integer as bool", '{"t":"key","keysym":65,"down":1}'),
    ("u32 overflow", '{"t":"ping","id":4294967296}'),
    ("negative id", '{"t":"ping","id":-1}'),
    ("huge integer", '{"t":"ping","id":' + "9" * 40 + "}"),
    ("keysym 0", '{"t":"key","keysym":0,"down":true}'),
    ("keysym too large", '{"t":"key","keysym":536870912,"down":true}'),
    ("pointer x 16384", '{"t":"pointer","x":16384,"y":0,"buttons":0}'),
    ("buttons 256", '{"t":"pointer","x":0,"y":0,"buttons":256}'),
    ("wheel 101", '{"t":"wheel","x":1,"y":2,"dx":0,"dy":101}'),
    ("screen width 0", '{"t":"screen","width":0,"height":1}'),
    ("screen height 16385", '{"t":"screen","width":1,"height":16385}'),
    ("unknown role", WELCOME.replace('"view"', '"admin"')),
    ("wrong protocol name", HELLO.replace('"rdesk"', '"vnc"')),
    ("close code 999", '{"t":"close","code":999,"reason":""}'),
    ("close code 5000", '{"t":"close","code":5000,"reason":""}'),
    ("deep nesting", '{"t":"ping","id":' + "[" * 5000 + "]" * 5000 + "}"),
    ("refresh with a field", '{"t":"refresh","x":1}'),
]


# --- update vectors ----------------------------------------------------------------------------

HEADER = struct.Struct("!BBHIQ")
RECT = struct.Struct("!HHHHBBI")
PNG_1x1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)


def header(nrects: int, seq: int = 1, ts: int = 1000, kind: int = 1, flags: int = 0) -> bytes:
    return HEADER.pack(kind, flags, nrects, seq, ts)


def rect(x: int, y: int, w: int, h: int, enc: int, payload: bytes, *, length: int | None = None,
         reserved: int = 0) -> bytes:
    n = len(payload) if length is None else length
    return RECT.pack(x, y, w, h, enc, reserved, n) + payload


def copy(sx: int, sy: int) -> bytes:
    return struct.pack("!HH", sx, sy)


UPDATES: list[tuple[str, bytes, tuple[int, int] | None]] = [
    ("empty update", header(0), None),
    ("exact flag", header(0, flags=1), None),
    ("max seq and timestamp", header(0, seq=2**32 - 1, ts=2**64 - 1), None),
    ("one PNG rect", header(1) + rect(0, 0, 1, 1, 2, PNG_1x1), None),
    ("rects of every encoding", header(4, flags=1)
     + rect(0, 0, 64, 64, 1, b"\xff\xd8jpeg") + rect(64, 0, 64, 64, 2, PNG_1x1)
     + rect(0, 64, 64, 64, 3, b"RIFFwebp") + rect(64, 64, 64, 64, 4, copy(0, 0)), None),
    ("rect at the far corner", header(1) + rect(16383, 16383, 1, 1, 2, b"x"), None),
    ("rect of the largest screen", header(1) + rect(0, 0, 16384, 16384, 2, b"x"), None),
    ("copy from the far corner", header(1) + rect(0, 0, 1, 1, 4, copy(16383, 16383)), None),
    ("shorter than the header", header(0)[:15], None),
    ("empty message", b"", None),
    ("kind 0", header(0, kind=0), None),
    ("kind 2", header(0, kind=2), None),
    ("reserved flag bit", header(0, flags=2), None),
    ("high flag bit", header(0, flags=0x80), None),
    ("too many rects", header(4097), None),
    ("nrects larger than present", header(2) + rect(0, 0, 1, 1, 2, b"x"), None),
    ("truncated rect header", header(1) + rect(0, 0, 1, 1, 2, b"x")[:13], None),
    ("reserved byte set", header(1) + rect(0, 0, 1, 1, 2, b"x", reserved=1), None),
    ("length past the end", header(1) + rect(0, 0, 1, 1, 2, b"x", length=2), None),
    ("wrapping length", header(1) + rect(0, 0, 1, 1, 2, b"x", length=0xFFFFFFFF), None),
    ("zero length", header(1) + rect(0, 0, 1, 1, 2, b""), None),
    ("encoding 0", header(1) + rect(0, 0, 1, 1, 0, b"x"), None),
    ("encoding 5", header(1) + rect(0, 0, 1, 1, 5, b"x"), None),
    # H264 rects (docs/protocol.md, "Video"): the codec checks the shape and the video header.
    ("h264 key on stream 7", header(1) + rect(0, 0, 16, 16, 5, b"\x07\x01\0\0\0\0\1\x67"), None),
    ("h264 delta on stream 0", header(1) + rect(2, 4, 32, 18, 5, b"\0\0\0\0\x41"), None),
    ("h264 odd width", header(1) + rect(0, 0, 17, 16, 5, b"\0\1\0\0\x41"), None),
    ("h264 smaller than 16", header(1) + rect(0, 0, 14, 16, 5, b"\0\1\0\0\x41"), None),
    ("h264 stream 8", header(1) + rect(0, 0, 16, 16, 5, b"\x08\1\0\0\x41"), None),
    ("h264 unknown flag", header(1) + rect(0, 0, 16, 16, 5, b"\0\x03\0\0\x41"), None),
    ("h264 reserved not zero", header(1) + rect(0, 0, 16, 16, 5, b"\0\1\0\1\x41"), None),
    ("h264 header without a unit", header(1) + rect(0, 0, 16, 16, 5, b"\0\1\0\0"), None),
    ("encoding 255", header(1) + rect(0, 0, 1, 1, 255, b"x"), None),
    ("x 16384", header(1) + rect(16384, 0, 1, 1, 2, b"x"), None),
    ("y 65535", header(1) + rect(0, 65535, 1, 1, 2, b"x"), None),
    ("w 0", header(1) + rect(0, 0, 0, 1, 2, b"x"), None),
    ("h 0", header(1) + rect(0, 0, 1, 0, 2, b"x"), None),
    ("w 16385", header(1) + rect(0, 0, 16385, 1, 2, b"x"), None),
    ("x + w past the largest screen", header(1) + rect(16000, 0, 385, 1, 2, b"x"), None),
    ("y + h past the largest screen", header(1) + rect(0, 1, 1, 16384, 2, b"x"), None),
    ("copy payload 3 bytes", header(1) + rect(0, 0, 1, 1, 4, b"\0\0\0"), None),
    ("copy payload 5 bytes", header(1) + rect(0, 0, 1, 1, 4, b"\0\0\0\0\0"), None),
    ("copy source past the largest screen", header(1) + rect(0, 0, 2, 1, 4, copy(16383, 0)),
     None),
    ("trailing byte", header(0) + b"\0", None),
    ("trailing byte after a rect", header(1) + rect(0, 0, 1, 1, 2, b"x") + b"\0", None),
    # Against the viewer's current screen (docs/protocol.md §4).
    ("inside the screen", header(1) + rect(576, 416, 64, 64, 2, b"x"), (640, 480)),
    ("x + w past the screen", header(1) + rect(577, 0, 64, 64, 2, b"x"), (640, 480)),
    ("y + h past the screen", header(1) + rect(0, 417, 64, 64, 2, b"x"), (640, 480)),
    ("copy inside the screen", header(1) + rect(0, 0, 64, 64, 4, copy(576, 416)), (640, 480)),
    ("copy source past the screen", header(1) + rect(0, 0, 64, 64, 4, copy(577, 0)),
     (640, 480)),
    ("seq 0 is fine first", header(0, seq=0), (640, 480)),
]


def receive_update(data: bytes, screen: tuple[int, int] | None) -> Update:
    """Decode an update as a viewer does: the codec alone, or a session welcomed at ``screen``."""
    if screen is None:
        message = codec.decode(data)
        assert isinstance(message, Update)
        return message
    session = Session(Role.VIEWER, 0.0)
    session.receive(HELLO, 0.0)
    session.send(Auth(PROTOCOL_VERSION, NONCE, "password", "secret", "vectors"), 0.0)
    session.receive(
        codec.encode(Welcome("control", 1, screen[0], screen[1], "vectors")), 0.0
    )
    update = session.receive(data, 0.0)
    assert isinstance(update, Update)
    return update


def _control_vector(name: str, text: str) -> dict[str, Any]:
    vector: dict[str, Any] = {"name": name, "kind": "control", "wire": text}
    try:
        message = codec.decode(text)
    except RemoteProtocolError as exc:
        vector.update(valid=False, code=int(exc.code))
    else:
        vector.update(valid=True, decoded=decoded_form(message))
    return vector


def _update_vector(name: str, data: bytes, screen: tuple[int, int] | None) -> dict[str, Any]:
    vector: dict[str, Any] = {
        "name": name,
        "kind": "update",
        "wire": base64.b64encode(data).decode(),
    }
    if screen is not None:
        vector["screen"] = list(screen)
    try:
        message = receive_update(data, screen)
    except RemoteProtocolError as exc:
        vector.update(valid=False, code=int(exc.code))
    else:
        vector.update(valid=True, decoded=decoded_form(message))
    return vector


def build() -> list[dict[str, Any]]:
    """Every vector, decoded by the Python reference implementation."""
    vectors = [_control_vector(name, text) for name, text in CONTROL]
    vectors += [_update_vector(name, data, screen) for name, data, screen in UPDATES]
    names = [v["name"] for v in vectors]
    assert len(names) == len(set(names)), "vector names must be unique"
    return vectors


def render(vectors: list[dict[str, Any]]) -> str:
    return json.dumps(vectors, indent=1, ensure_ascii=True) + "\n"


def main() -> int:
    OUT.write_text(render(build()), encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(main())
