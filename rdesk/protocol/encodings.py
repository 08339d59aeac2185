"""Rectangle encodings: the image formats a browser decodes natively, copy-rect, and H.264."""

import enum

__all__ = ["Encoding"]


class Encoding(enum.IntEnum):
    """How one rectangle's payload is encoded (docs/protocol.md, "Rectangle encodings")."""

    #: Lossy JPEG (baseline, 4:2:0 or 4:4:4); used while a region moves.
    JPEG = 1
    #: Lossless PNG (RGB).
    PNG = 2
    #: WebP, lossy or lossless (RGB).
    WEBP = 3
    #: Copy of pixels the viewer already has: payload is ``src_x, src_y`` as two u16.
    COPY = 4
    #: One H.264 access unit of a video stream, behind a 4-byte video header
    #: (:mod:`rdesk.protocol.video`); only to viewers that declared ``h264``.
    H264 = 5
