"""Rectangle encoding: exactness, sizes, scaling, classifier and the shared cache."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from rdesk.host.encoding.encode import (
    EncodeCache,
    EncodedRect,
    encode_rect,
    is_flat,
    is_photo_like,
    split_rect,
)
from rdesk.protocol.encodings import Encoding
from tests.xclients.painter import make_pattern


def ui_frame(h: int = 240, w: int = 320) -> np.ndarray:
    """Flat fills, lines and text: what a desktop mostly looks like."""
    im = Image.new("RGB", (w, h), (240, 240, 240))
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 0, w, 20), fill=(40, 60, 120))
    for i in range(20, h, 14):
        draw.text((5, i), "The quick brown fox jumps over 0123456789", fill=(0, 0, 0))
    draw.rectangle((w // 2, h // 2, w - 10, h - 10), outline=(200, 0, 0), width=2)
    rgb = np.asarray(im)
    return to_bgra(rgb)


def photo_frame(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus noise: photo/video-like, many distinct colours."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], axis=-1)
    rgb = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return to_bgra(rgb)


def to_bgra(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    out = np.empty((h, w, 4), dtype=np.uint8)
    out[..., 0] = rgb[..., 2]
    out[..., 1] = rgb[..., 1]
    out[..., 2] = rgb[..., 0]
    out[..., 3] = 255
    return out


def decode(enc: EncodedRect) -> np.ndarray:
    with Image.open(io.BytesIO(enc.payload)) as im:
        fmt = im.format
        rgb = np.asarray(im.convert("RGB"))
    assert fmt == {Encoding.JPEG: "JPEG", Encoding.PNG: "PNG", Encoding.WEBP: "WEBP"}[enc.encoding]
    return rgb


def expected_rgb(frame: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = rect
    return frame[y : y + h, x : x + w, 2::-1]


@pytest.mark.parametrize("make", [ui_frame, photo_frame])
@pytest.mark.parametrize("rect", [(0, 0, 320, 240), (13, 7, 100, 61), (319, 239, 1, 1)])
def test_lossless_is_exact(make: Callable[[], np.ndarray], rect: tuple[int, int, int, int]) -> None:
    frame = make()
    enc = encode_rect(frame, rect, lossless=True, quality=75)
    assert enc.exact
    assert enc.encoding in (Encoding.PNG, Encoding.WEBP)
    assert (enc.x, enc.y, enc.w, enc.h) == rect
    assert np.array_equal(decode(enc), expected_rgb(frame, rect))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    x=st.integers(0, 63),
    y=st.integers(0, 47),
    w=st.integers(1, 64),
    h=st.integers(1, 48),
)
def test_lossless_exact_random(seed: int, x: int, y: int, w: int, h: int) -> None:
    frame = np.random.default_rng(seed).integers(0, 256, (96, 128, 4), dtype=np.uint8)
    enc = encode_rect(frame, (x, y, w, h), lossless=True, quality=50)
    assert np.array_equal(decode(enc), expected_rgb(frame, (x, y, w, h)))


def test_classifier() -> None:
    assert not is_photo_like(ui_frame(), (0, 0, 320, 240))
    assert is_photo_like(photo_frame(), (0, 0, 320, 240))
    assert not is_photo_like(photo_frame(), (0, 0, 16, 16))  # too small to bother


def test_codec_choice() -> None:
    assert encode_rect(ui_frame(), (0, 0, 320, 240), lossless=True, quality=80).encoding == (
        Encoding.WEBP
    )
    photo = encode_rect(photo_frame(), (0, 0, 320, 240), lossless=True, quality=80)
    assert photo.encoding == Encoding.WEBP and photo.exact
    fallback = encode_rect(
        photo_frame(), (0, 0, 320, 240), lossless=True, quality=80, allow_lossy_fallback=True
    )
    assert fallback.encoding == Encoding.JPEG and not fallback.exact
    assert len(fallback.payload) < len(photo.payload)
    # Text is never degraded by the fallback.
    text = encode_rect(
        ui_frame(), (0, 0, 320, 240), lossless=True, quality=80, allow_lossy_fallback=True
    )
    assert text.exact


def test_flat_content_asked_lossy_is_sent_exactly_when_allowed() -> None:
    ui, photo = ui_frame(), photo_frame()
    whole = (0, 0, 320, 240)
    assert is_flat(ui, whole) and not is_flat(photo, whole)
    assert not is_flat(ui, (0, 0, 63, 63))  # too small to bother
    for scale in (1.0, 0.5):
        jpeg = encode_rect(ui, whole, lossless=False, quality=80, scale=scale)
        flat = encode_rect(ui, whole, lossless=False, quality=80, scale=scale,
                           exact_if_flat=True)
        assert jpeg.encoding is Encoding.JPEG and not jpeg.exact
        # Lossless, full scale, exact, and smaller than the JPEG it replaces.
        assert flat.encoding is Encoding.WEBP and flat.exact
        assert np.array_equal(decode(flat), expected_rgb(ui, whole))
        assert len(flat.payload) < len(jpeg.payload)
    # The e2e tests' motion pattern (a colour per tile, gradients, noise) is not flat, tile by
    # tile or in bands: its motion stays JPEG.
    pattern = to_bgra(make_pattern(640, 256, 1))
    assert not any(is_flat(pattern, (x, 0, 64, 64)) for x in range(0, 640, 64))
    assert not is_flat(pattern, (0, 0, 640, 256))
    # A photo stays JPEG, and so does a small rect.
    assert encode_rect(photo, whole, lossless=False, quality=80,
                       exact_if_flat=True).encoding is Encoding.JPEG
    assert encode_rect(ui, (0, 0, 40, 40), lossless=False, quality=80,
                       exact_if_flat=True).encoding is Encoding.JPEG


def test_cache_tells_exact_if_flat_apart() -> None:
    cache = EncodeCache()
    ui = ui_frame()
    lossy = cache.get(1, ui, (0, 0, 320, 240), lossless=False, quality=80)
    flat = cache.get(1, ui, (0, 0, 320, 240), lossless=False, quality=80, exact_if_flat=True)
    assert not lossy.exact and flat.exact and cache.encodes == 2


def test_png_beyond_webp_limit() -> None:
    frame = np.random.default_rng(5).integers(0, 256, (2, 16384, 4), dtype=np.uint8)
    enc = encode_rect(frame, (0, 0, 16384, 2), lossless=True, quality=80)
    assert enc.encoding == Encoding.PNG and enc.exact
    assert np.array_equal(decode(enc), expected_rgb(frame, (0, 0, 16384, 2)))


@pytest.mark.parametrize("quality", [10, 75, 95])
def test_jpeg_size_and_fidelity(quality: int) -> None:
    frame = photo_frame()
    rect = (10, 20, 200, 100)
    enc = encode_rect(frame, rect, lossless=False, quality=quality)
    assert enc.encoding == Encoding.JPEG and not enc.exact
    rgb = decode(enc)
    assert rgb.shape == (100, 200, 3)
    err = np.abs(rgb.astype(int) - expected_rgb(frame, rect).astype(int)).mean()
    assert err < (40 if quality == 10 else 12)


def test_jpeg_quality_orders_size() -> None:
    frame = photo_frame()
    sizes = [
        len(encode_rect(frame, (0, 0, 320, 240), lossless=False, quality=q).payload)
        for q in (20, 60, 95)
    ]
    assert sizes == sorted(sizes)


@pytest.mark.parametrize(
    ("scale", "size"), [(0.5, (160, 120)), (1 / 3, (107, 80)), (0.75, (240, 180))]
)
@pytest.mark.parametrize("lossless", [False, True])
def test_scale(scale: float, size: tuple[int, int], lossless: bool) -> None:
    frame = ui_frame()
    enc = encode_rect(frame, (0, 0, 320, 240), lossless=lossless, quality=80, scale=scale)
    assert (enc.w, enc.h) == (320, 240)
    assert not enc.exact
    with Image.open(io.BytesIO(enc.payload)) as im:
        assert im.size == size


def test_rejects_bad_arguments() -> None:
    frame = ui_frame()
    with pytest.raises(ValueError):
        encode_rect(frame, (300, 0, 21, 10), lossless=True, quality=80)
    with pytest.raises(ValueError):
        encode_rect(frame, (0, 0, 0, 10), lossless=True, quality=80)
    with pytest.raises(ValueError):
        encode_rect(frame, (0, 0, 10, 10), lossless=False, quality=0)
    with pytest.raises(ValueError):
        encode_rect(frame[..., :3], (0, 0, 10, 10), lossless=False, quality=50)


def test_non_contiguous_frame() -> None:
    big = ui_frame(300, 400)
    frame = big[10:250, 20:340]
    enc = encode_rect(frame, (5, 5, 50, 50), lossless=True, quality=80)
    assert np.array_equal(decode(enc), expected_rgb(frame, (5, 5, 50, 50)))


@settings(max_examples=100, deadline=None)
@given(
    x=st.integers(0, 100),
    y=st.integers(0, 100),
    w=st.integers(1, 1500),
    h=st.integers(1, 1500),
    mw=st.integers(1, 600),
    mh=st.integers(1, 600),
)
def test_split_rect_partitions(x: int, y: int, w: int, h: int, mw: int, mh: int) -> None:
    pieces = split_rect((x, y, w, h), mw, mh)
    assert sum(pw * ph for _, _, pw, ph in pieces) == w * h
    for px, py, pw, ph in pieces:
        assert 0 < pw <= mw and 0 < ph <= mh
        assert x <= px and px + pw <= x + w and y <= py and py + ph <= y + h
    # Disjoint: grid pieces are distinct cells, and areas add up, so they tile the rect.
    assert len({(px, py) for px, py, _, _ in pieces}) == len(pieces)


def test_cache_shares_encodes() -> None:
    cache = EncodeCache(max_entries=2)
    frame = ui_frame()
    a = cache.get(1, frame, (0, 0, 64, 64), lossless=False, quality=75)
    b = cache.get(1, frame, (0, 0, 64, 64), lossless=False, quality=75)
    assert a is b
    assert (cache.hits, cache.misses, cache.encodes) == (1, 1, 1)
    # Different quality is a different JPEG; lossless ignores quality.
    cache.get(1, frame, (0, 0, 64, 64), lossless=False, quality=50)
    lossless_a = cache.get(1, frame, (0, 0, 64, 64), lossless=True, quality=50)
    lossless_b = cache.get(1, frame, (0, 0, 64, 64), lossless=True, quality=90)
    assert lossless_a is lossless_b
    assert (cache.hits, cache.misses, cache.encodes) == (2, 3, 3)
    # Bounded LRU: the q75 entry was evicted.
    assert len(cache) == 2
    cache.get(1, frame, (0, 0, 64, 64), lossless=False, quality=75)
    assert cache.encodes == 4
    # A new frame id is a new encode.
    cache.get(2, frame, (0, 0, 64, 64), lossless=False, quality=75)
    assert cache.encodes == 5


def test_cache_is_bounded_in_bytes() -> None:
    """Motion fills the cache with large JPEGs of frames no viewer will ask for again: the
    oldest go once the payloads pass max_bytes, and the newest is always kept."""
    frame = photo_frame(256, 256)
    one = len(encode_rect(frame, (0, 0, 256, 256), lossless=False, quality=90).payload)
    cache = EncodeCache(max_entries=100, max_bytes=3 * one + one // 2)
    for frame_id in range(10):
        cache.get(frame_id, frame, (0, 0, 256, 256), lossless=False, quality=90)
    assert len(cache) == 3
    cache.get(9, frame, (0, 0, 256, 256), lossless=False, quality=90)  # the newest: a hit
    cache.get(6, frame, (0, 0, 256, 256), lossless=False, quality=90)  # evicted: encoded again
    assert (cache.hits, cache.encodes) == (1, 11)
    tiny = EncodeCache(max_bytes=1)
    result = tiny.get(1, frame, (0, 0, 64, 64), lossless=False, quality=90)
    assert len(tiny) == 1 and tiny.get(1, frame, (0, 0, 64, 64), lossless=False,
                                       quality=90) is result
    with pytest.raises(ValueError):
        EncodeCache(max_bytes=0)


def test_cache_concurrent_callers_encode_once() -> None:
    cache = EncodeCache()
    frame = photo_frame(720, 1280)
    results: list[EncodedRect] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(cache.get(7, frame, (0, 0, 1280, 720), lossless=False, quality=80))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and all(r is results[0] for r in results)
    assert cache.encodes == 1 and cache.hits == 7


def test_cache_propagates_errors_without_caching() -> None:
    cache = EncodeCache()
    frame = ui_frame()
    with pytest.raises(ValueError):
        cache.get(1, frame, (0, 0, 999, 10), lossless=True, quality=80)
    assert len(cache) == 0
    with pytest.raises(ValueError):
        cache.get(1, frame, (0, 0, 999, 10), lossless=True, quality=80)


def test_solid_regions_are_one_exact_pixel() -> None:
    from rdesk.client.framebuffer import decode_image
    from rdesk.host.encoding.encode import solid_colour
    from rdesk.protocol.updates import Rect as WireRect

    frame = np.zeros((100, 200, 4), np.uint8)
    frame[..., :3] = (30, 20, 10)  # BGR
    frame[40:60, 150:170, :3] = (1, 2, 3)
    assert solid_colour(frame, (0, 0, 100, 100)) == (10, 20, 30)
    assert solid_colour(frame, (0, 0, 200, 100)) is None
    for lossless in (True, False):  # solid wins over both codecs: it is exact and tiny
        enc = encode_rect(frame, (0, 0, 100, 100), lossless=lossless, quality=50)
        assert enc.exact and len(enc.payload) < 100
        image = decode_image(WireRect(0, 0, 100, 100, enc.encoding, enc.payload))
        assert image.size == (100, 100)
        assert np.array_equal(np.asarray(image), np.full((100, 100, 3), (10, 20, 30), np.uint8))
