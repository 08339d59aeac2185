"""CPU per video frame on the host: one 1080p H.264 frame of a photo panning, through the
host's own encoder (rdesk/host/video/encoder.py: BGRA→4:2:0 from the capture in place, libx264
ultrafast/zerolatency/baseline), against the JPEG tiles it replaces (the full-screen lossy
round of rdesk/host/encoding/parallel.py at quality 30, scale 1/4 and quality 80, scale 1, on
all cores); and the colour conversion alone, on both of the encoder's paths (libyuv, and
swscale where libyuv is missing), when this tree's encoder has them.

    python benchmarks/bench_video.py [--frames 90] [--runs 3] [--bitrate 7.5e6]
                                     [--x264-threads N ...] [--source-fps 60 ...]
                                     [--other-codecs]

The frames are the photo of benchmarks/photo.py panned by 8 pixels a frame, as
``xload.py photo`` draws it (``--source-fps N``: 8 × 30 / N pixels a frame, N × frames / 30
frames, the encoder told 30 frames a second and told N). CPU is this process's (all threads)
per frame; bytes per frame and PSNR of the decoded picture against the frame (PyAV's decoder,
as the Python viewer decodes it) are printed too. Median of ``--runs``.

``--other-codecs`` adds the encoders PyAV's wheels carry beside libx264, each at its fastest
real-time setting on one thread, fed the same 4:2:0 pictures (converted before the clock
starts, for x264 too, so those cells compare encoders alone): VP8 and VP9 (libvpx, realtime
deadline, no lag) and AV1 (SVT-AV1 low-delay CBR, its fastest preset): what a change of codec
could give the host's CPU.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_links import machine_line
from benchmarks.fidelity import psnr
from benchmarks.photo import pan_offset, photo
from rdesk.host.encoding.encode import EncodeCache
from rdesk.host.encoding.jobs import bands
from rdesk.host.encoding.parallel import encode_round
from rdesk.host.video import encoder
from rdesk.host.video.encoder import H264Encoder

W, H = 1920, 1080


def frames(count: int, step: int = 8) -> list[np.ndarray]:
    picture = photo(2 * W, H)
    out = []
    for i in range(count):
        x = pan_offset(i, step, W)
        bgra = np.empty((H, W, 4), np.uint8)
        bgra[..., :3] = picture[:, x : x + W, ::-1]
        bgra[..., 3] = 255
        out.append(bgra)
    return out


def video_run(shots: list[np.ndarray], bitrate: int, threads: int | None = None,
              fps: int | None = None) -> dict[str, float]:
    import av

    # (Trees before the threads or fps parameter take none: their encoder's own.)
    more: dict[str, int] = {"fps": fps} if fps else {}
    encoder = (H264Encoder((W, H), bitrate, threads, **more) if threads
               else H264Encoder((W, H), bitrate, **more))
    decoder = av.CodecContext.create("h264", "r")
    cpu = 0.0
    sizes, scores = [], []
    for i, frame in enumerate(shots):
        start = time.process_time()
        unit, _ = encoder.encode(frame, (0, 0, W, H), key=i == 0)
        cpu += time.process_time() - start
        sizes.append(len(unit))
        picture = decoder.decode(av.Packet(unit))[-1].to_ndarray(format="rgb24")
        scores.append(psnr(picture[::5, ::5], frame[::5, ::5, 2::-1]))
    return {"cpu_ms": cpu / len(shots) * 1000, "kB": statistics.mean(sizes[1:]) / 1000,
            "psnr": statistics.median(scores[len(scores) // 2 :])}


#: The other encoders' cells: name, PyAV codec, options (one thread each).
OTHER_CODECS = (
    ("libx264 ultrafast zerolatency", "libx264",
     {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline"}),
    ("VP8 realtime cpu-used 16", "libvpx",
     {"deadline": "realtime", "cpu-used": "16", "lag-in-frames": "0"}),
    ("VP9 realtime cpu-used 8", "libvpx-vp9",
     {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "row-mt": "0"}),
    ("AV1 SVT preset 13 low-delay CBR", "libsvtav1",
     {"preset": "13", "svtav1-params": "lp=1:pred-struct=1:rc=2"}),
)


def codec_run(shots: list[np.ndarray], codec: str, options: dict[str, str], bitrate: int
              ) -> dict[str, float]:
    """One encoder through PyAV on pictures converted beforehand; this process's CPU."""
    import fractions

    import av

    pictures = [av.VideoFrame.from_ndarray(s, format="bgra").reformat(format="yuv420p")
                for s in shots]
    context: Any = av.CodecContext.create(codec, "w")
    context.width, context.height, context.pix_fmt = W, H, "yuv420p"
    context.time_base, context.framerate = fractions.Fraction(1, 30), 30
    context.bit_rate, context.thread_count, context.options = bitrate, 1, options
    decoder: Any = av.CodecContext.create({"libx264": "h264", "libvpx": "vp8",
                                      "libvpx-vp9": "vp9"}.get(codec, "libdav1d"), "r")
    cpu, sizes, scores = 0.0, [], []
    for i, picture in enumerate(pictures):
        picture.pts = i
        start = time.process_time()
        packets = context.encode(picture)
        cpu += time.process_time() - start
        for packet in packets:
            sizes.append(packet.size)
            for decoded in decoder.decode(packet):
                shown = decoded.to_ndarray(format="rgb24")
                shot = shots[int(decoded.pts) if decoded.pts is not None else i]
                scores.append(psnr(shown[::5, ::5], shot[::5, ::5, 2::-1]))
    return {"cpu_ms": cpu / len(pictures) * 1000, "kB": statistics.mean(sizes[1:]) / 1000,
            "psnr": statistics.median(scores[len(scores) // 2 :]) if scores else 0.0}


def convert_run(shots: list[np.ndarray], use_libyuv: bool) -> dict[str, float]:
    from rdesk.host.video.encoder import Converter

    converter = Converter((W, H), use_libyuv=use_libyuv)
    start = time.process_time()
    for frame in shots:
        converter.convert(frame)
    return {"cpu_ms": (time.process_time() - start) / len(shots) * 1000, "kB": 0.0}


def tiles_run(shots: list[np.ndarray], quality: int, scale: float) -> dict[str, float]:
    jobs = [(box, False) for box in bands([(0, 0, W, H)])]
    cpu = 0.0
    sizes = []
    for i, frame in enumerate(shots):
        start = time.process_time()
        rects = encode_round(EncodeCache(), frame, i, jobs, quality=quality, scale=scale)
        cpu += time.process_time() - start
        sizes.append(sum(len(r.payload) for r in rects))
    return {"cpu_ms": cpu / len(shots) * 1000, "kB": statistics.mean(sizes) / 1000}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bitrate", type=float, default=7.5e6, help="bits/s (7.5e6)")
    parser.add_argument("--x264-threads", type=int, action="append", default=[],
                        help="another H.264 cell with this many x264 threads (repeatable)")
    parser.add_argument("--source-fps", type=int, action="append", default=[],
                        help="two more H.264 cells: a pan at this rate (the same motion a "
                             "second), the encoder told 30 and told this rate (repeatable)")
    parser.add_argument("--other-codecs", action="store_true",
                        help="cells for VP8, VP9 and AV1 beside x264, the encoders alone")
    args = parser.parse_args(argv)
    shots = frames(args.frames)
    cells: dict[str, list[dict[str, float]]] = {}
    runs: list[tuple[str, Callable[[], dict[str, float]]]] = [
        (f"H.264 {args.bitrate / 1e6:g} Mbit/s", lambda: video_run(shots, int(args.bitrate))),
        ("JPEG q30 1/4 (lowest level)", lambda: tiles_run(shots, 30, 0.25)),
        ("JPEG q80 1/1", lambda: tiles_run(shots, 80, 1.0)),
    ]
    for threads in args.x264_threads:
        runs.append((f"H.264 {args.bitrate / 1e6:g} Mbit/s, {threads} x264 thread(s)",
                     functools.partial(video_run, shots, int(args.bitrate), threads)))
    told_fps = "fps" in inspect.signature(H264Encoder).parameters
    for fps in args.source_fps:
        fast = frames(args.frames * fps // 30, max(1, 8 * 30 // fps))
        label = f"H.264 {args.bitrate / 1e6:g} Mbit/s, a {fps} fps pan"
        runs.append((f"{label}, told 30",
                     functools.partial(video_run, fast, int(args.bitrate))))
        if told_fps:
            runs.append((f"{label}, told {fps}",
                         functools.partial(video_run, fast, int(args.bitrate), fps=fps)))
    if args.other_codecs:
        import av

        for label, codec, options in OTHER_CODECS:
            if codec not in av.codecs_available:
                print(f"skipped: {label}: this PyAV has no {codec} encoder", file=sys.stderr)
                continue
            runs.append((f"{label} (encoder alone)", functools.partial(
                codec_run, shots, codec, options, int(args.bitrate))))
    if hasattr(encoder, "Converter"):  # the colour conversion alone (not in older trees)
        if encoder.libyuv() is not None:
            runs.append(("colour conversion alone: libyuv", lambda: convert_run(shots, True)))
        runs.append(("colour conversion alone: swscale", lambda: convert_run(shots, False)))
    for _ in range(args.runs):  # interleaved, so load changes hit every cell alike
        for name, run in runs:
            cells.setdefault(name, []).append(run())
    print("| 1920x1080 frame | CPU ms/frame | kB/frame | PSNR dB |")
    print("|---|---|---|---|")
    for name, results in cells.items():
        cpu = statistics.median(r["cpu_ms"] for r in results)
        kb = statistics.median(r["kB"] for r in results)
        size = f"{kb:.1f}" if kb else "–"
        score = (f"{statistics.median(r['psnr'] for r in results):.1f}"
                 if "psnr" in results[0] else "–")
        print(f"| {name} | {cpu:.1f} | {size} | {score} |")
    print(machine_line(args.frames / 30, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
