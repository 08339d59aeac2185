"""Rectangle encodings: the image formats a browser decodes natively, plus copy-rect."""

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
