"""Half- and quarter-scale tiles scaled up through libyuv (rdesk/client/upscale.py): a 2x the
same pixels as Pillow's bilinear resize within 1, a 4x Pillow's 2x twice, only the rectangle
written, every case it declines left to Pillow, and a framebuffer applying real JPEG updates
either way to nearly the same picture."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from rdesk.client.framebuffer import Framebuffer
from rdesk.client.pixels import mapped_rgb
from rdesk.client.upscale import MIN_PIXELS, Upscaler
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.updates import Rect, Update

pytestmark = pytest.mark.skipif(not Upscaler().available, reason="libyuv is not installed")


def photo_like(w: int, h: int, seed: int) -> np.ndarray:
    """Edges and texture at several scales (a filter's errors show on them, and a shifted or
    mirrored result is far off)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC),
                        dtype=np.int16)
    grain = rng.integers(-20, 21, (h, w, 3))
    return np.clip(smooth + grain, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", [(1920, 1080), (642, 366), (258, 130)])
def test_a_half_scale_tile_is_doubled_as_pillow_does(size: tuple[int, int]) -> None:
    w, h = size
    tile = Image.fromarray(photo_like(w, h, w)).reduce(2)
    image, pixels = mapped_rgb(w, h)
    assert Upscaler().paint(tile, pixels, (0, 0, w, h))
    want = np.asarray(tile.resize((w, h), Image.Resampling.BILINEAR), dtype=np.int16)
    got = np.asarray(image, dtype=np.int16)
    assert np.abs(got - want).max() <= 1


def test_a_quarter_scale_tile_is_doubled_twice() -> None:
    w, h = 1280, 720
    tile = Image.fromarray(photo_like(w, h, 4)).reduce(4)
    image, pixels = mapped_rgb(w, h)
    assert Upscaler().paint(tile, pixels, (0, 0, w, h))
    twice = tile.resize((w // 2, h // 2), Image.Resampling.BILINEAR).resize(
        (w, h), Image.Resampling.BILINEAR)
    got = np.asarray(image, dtype=np.int16)
    assert np.abs(got - np.asarray(twice, dtype=np.int16)).max() <= 2
    # Close to Pillow's one 4x too (a softer filter, not a shifted one).
    once = np.asarray(tile.resize((w, h), Image.Resampling.BILINEAR), dtype=np.int16)
    assert np.abs(got - once).mean() < 3


def test_only_the_box_is_written() -> None:
    image, pixels = mapped_rgb(400, 300)
    image.paste((10, 20, 30), (0, 0, 400, 300))
    tile = Image.fromarray(photo_like(200, 160, 5)).reduce(2)  # 100x80
    upscaler = Upscaler()
    assert upscaler.paint(tile, pixels, (150, 90, 200, 160))
    got = np.asarray(image, dtype=np.int16)
    want = np.asarray(tile.resize((200, 160), Image.Resampling.BILINEAR), dtype=np.int16)
    assert np.abs(got[90:250, 150:350] - want).max() <= 1
    outside = np.ones((300, 400), bool)
    outside[90:250, 150:350] = False
    assert (got[outside] == (10, 20, 30)).all()
    # A smaller tile after a larger one reuses the scratch planes: still right.
    small = Image.fromarray(photo_like(256, 128, 6)).reduce(2)
    assert upscaler.paint(small, pixels, (0, 0, 256, 128))
    want = np.asarray(small.resize((256, 128), Image.Resampling.BILINEAR), dtype=np.int16)
    assert np.abs(np.asarray(image, dtype=np.int16)[:128, :256] - want).max() <= 1


def test_what_it_declines_writes_nothing() -> None:
    image, pixels = mapped_rgb(800, 600)
    before = image.copy()
    upscaler = Upscaler()
    tile = Image.fromarray(photo_like(400, 300, 1))
    assert not upscaler.paint(tile.reduce(3), pixels, (0, 0, 399, 300))  # a third
    assert not upscaler.paint(tile.resize((150, 150)), pixels, (0, 0, 400, 300))  # not 2x
    assert not upscaler.paint(tile.resize((200, 149)), pixels, (0, 0, 400, 300))  # odd height
    assert not upscaler.paint(tile.resize((60, 60)), pixels, (0, 0, 120, 120))  # too small
    assert MIN_PIXELS > 120 * 120
    assert not upscaler.paint(tile.reduce(2).convert("L"), pixels, (0, 0, 400, 300))
    assert not upscaler.paint(tile.reduce(2), None, (0, 0, 400, 300))  # no mapped memory
    assert np.array_equal(np.asarray(image), np.asarray(before))
    with pytest.raises(ValueError, match="not within"):
        upscaler.paint(tile.reduce(2), pixels, (500, 400, 400, 300))
    assert np.array_equal(np.asarray(image), np.asarray(before))


def jpeg(pixels: np.ndarray, quality: int = 40) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=quality)
    return out.getvalue()


def test_a_framebuffer_paints_half_scale_jpeg_updates_either_way_alike() -> None:
    """The host's half- and quarter-scale JPEG tiles (a full screen, and tiles beside a
    full-size one) give the same picture through libyuv as through Pillow's resize and paste
    (a 2x within 1, a 4x within what two filters differ by)."""
    full = photo_like(1280, 720, 9)
    half = np.asarray(Image.fromarray(full).reduce(2))
    quarter = np.asarray(Image.fromarray(full[384:640, 640:1152]).reduce(4))
    rects = (
        Rect(0, 0, 1280, 720, Encoding.JPEG, jpeg(half)),
        Rect(256, 128, 512, 256, Encoding.JPEG, jpeg(half[64:192, 128:384])),
        Rect(0, 0, 64, 64, Encoding.JPEG, jpeg(full[:64, :64])),
        Rect(640, 384, 512, 256, Encoding.JPEG, jpeg(quarter)),
    )
    update = Update(1, 0, rects, exact=False)
    fast, plain = Framebuffer(1280, 720), Framebuffer(1280, 720)
    plain._upscaler._lib = None  # Pillow's path, as a viewer without libyuv paints
    assert fast.apply(update) == plain.apply(update)
    got = np.asarray(fast.image, dtype=np.int16)
    want = np.asarray(plain.image, dtype=np.int16)
    assert np.abs(got[:384] - want[:384]).max() <= 1
    assert np.abs(got[384:640, :640] - want[384:640, :640]).max() <= 1
    assert np.abs(got[384:640, 640:1152] - want[384:640, 640:1152]).mean() < 3
    # And it is as near the true picture as Pillow's.
    def psnr(picture: np.ndarray) -> float:
        err = np.mean((picture.astype(np.float64) - full) ** 2)
        return float(10 * np.log10(255**2 / err))

    assert psnr(got) > psnr(want) - 0.1


def test_scratch_beyond_the_bound_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """A screen larger than the bound is scaled with planes of the call's own, let go after."""
    from rdesk.client import upscale

    monkeypatch.setattr(upscale, "KEEP_BYTES", 100_000)
    image, pixels = mapped_rgb(512, 256)
    tile = Image.fromarray(photo_like(512, 256, 8)).reduce(2)
    upscaler = Upscaler()
    assert upscaler.paint(tile, pixels, (0, 0, 512, 256))  # needs 491,520 bytes
    assert len(upscaler._scratch) == 0
    want = np.asarray(tile.resize((512, 256), Image.Resampling.BILINEAR), dtype=np.int16)
    assert np.abs(np.asarray(image, dtype=np.int16) - want).max() <= 1
    small = Image.fromarray(photo_like(256, 128, 8)).reduce(2)
    assert upscaler.paint(small, pixels, (0, 0, 256, 128))  # 122,880 bytes: over it too
    assert len(upscaler._scratch) == 0
    monkeypatch.setattr(upscale, "KEEP_BYTES", 200_000)
    assert upscaler.paint(small, pixels, (0, 0, 256, 128))
    assert len(upscaler._scratch) == 3 * (128 * 64 + 256 * 128)
