"""Explicit limits on everything that crosses the wire (docs/protocol.md, "Limits").

Both peers enforce these on what they *receive* and respect them on what they *send*: a host
can attack a viewer as well as the other way round.
"""

__all__ = [
    "MAX_ACK_HOLD_US",
    "MAX_BUTTON_MASK",
    "MAX_CHUNK",
    "MAX_CHUNK_MESSAGE",
    "MAX_CONTROL_MESSAGE",
    "MAX_IN_FLIGHT",
    "MAX_KEYSYM",
    "MAX_MESSAGE",
    "MAX_RECTS_PER_UPDATE",
    "MAX_UPDATE_SCREENS",
    "MAX_RECT_PAYLOAD",
    "MAX_SCREEN_SIDE",
    "MAX_SECRET",
    "MAX_STRING",
    "MAX_TEXT_INPUT",
    "MAX_UPDATE_MESSAGE",
    "MAX_VIEWER_MESSAGE",
    "MAX_WHEEL_STEPS",
    "NONCE_BYTES",
]

#: Largest JSON control message, in bytes of UTF-8.
MAX_CONTROL_MESSAGE = 16 * 1024
#: Largest binary framebuffer update message, header included.
MAX_UPDATE_MESSAGE = 8 * 1024 * 1024
#: Largest payload of one binary transfer chunk (``xfer_data``, rdesk/protocol/chunks.py).
MAX_CHUNK = 256 * 1024
#: Largest transfer chunk message: its 20-byte header and the payload.
MAX_CHUNK_MESSAGE = 20 + MAX_CHUNK
#: The websocket layer's own limit: the largest message kind.
MAX_MESSAGE = MAX_UPDATE_MESSAGE
#: The largest message a viewer sends (a chunk of an upload): the host's websocket limit.
MAX_VIEWER_MESSAGE = max(MAX_CONTROL_MESSAGE, MAX_CHUNK_MESSAGE)
#: Rectangles in one update.
MAX_RECTS_PER_UPDATE = 4096
#: Pixels one update's rectangles touch, in screens (overlaps count twice): a viewer refuses
#: more (``TOO_BIG``) before painting, and a host splits a round to stay within it.
MAX_UPDATE_SCREENS = 3
#: Encoded bytes of one rectangle.
MAX_RECT_PAYLOAD = MAX_UPDATE_MESSAGE - 64
#: Largest screen width or height either peer accepts.
MAX_SCREEN_SIDE = 16384
#: Longest free-form string field (names, reasons), in characters.
MAX_STRING = 256
#: Longest secret (password, invite code), in characters.
MAX_SECRET = 1024
#: Longest text a viewer may ask the host to type in one message, in characters.
MAX_TEXT_INPUT = 4096
#: Largest X11 keysym value (keysyms are 29-bit, Unicode keysyms top out at 0x110FFFF).
MAX_KEYSYM = 0x1FFFFFFF
#: Button state bit mask: buttons 1..8.
MAX_BUTTON_MASK = 0xFF
#: Largest wheel movement in one message, in detents per axis.
MAX_WHEEL_STEPS = 100
#: Largest in-flight window (unacknowledged updates) a host may use.
MAX_IN_FLIGHT = 64
#: Largest hold time an ``ack`` may report, microseconds (docs/protocol.md §7).
MAX_ACK_HOLD_US = 10_000_000
#: Longest failed-login delay a host may announce (``notice``'s ``delay``), seconds.
MAX_LOGIN_DELAY = 3600
#: Bytes of the server's authentication nonce.
NONCE_BYTES = 16
