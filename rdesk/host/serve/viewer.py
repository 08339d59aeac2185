"""One connected viewer's update sender on the host: the async shell around its planner.

Each viewer keeps its own picture model (:class:`~rdesk.host.encoding.planner.Planner`: dirty
tiles, lossy tiles, what it provably holds) and its own in-flight window (``session.flow``).
When the window has room, :meth:`ViewerLink.run` asks the planner for a round, encodes the
**current** pixels of its tiles and sends them as one update, so a slow viewer sees fewer
frames, never stale ones, and never slows another.

Bandwidth adaptation (docs/adaptation.md): each link owns a
:class:`~rdesk.protocol.controller.Controller` fed by the acknowledgements of its updates. It
sets the JPEG quality and downscale of moving tiles, the byte window in flight, the refresh
budget the planner fits lossless rounds into, and the earliest time the next update may leave
(frame-rate and bandwidth caps), and how many updates may be in flight: enough for a round trip
of rounds at the frame rate allowed (video rounds at their streams' rate), so a long round trip
does not cap the rate. This module awaits, reads the clock and passes ``now`` on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import numpy as np

from rdesk.common.waiting import wait_at_most
from rdesk.host.encoding.encode import EncodeCache, EncodedRect, is_photo_like
from rdesk.host.encoding.jobs import Job
from rdesk.host.encoding.parallel import encode_round
from rdesk.host.encoding.planner import Planner
from rdesk.host.encoding.scrolls import plan_scroll
from rdesk.host.screen.source import ScreenSource
from rdesk.host.serve.batches import batches
from rdesk.host.video import encoder as video_encoder
from rdesk.host.video.shared import SharedEncoders
from rdesk.host.video.streams import ROUND_RATE, VideoPlan, VideoStreams
from rdesk.protocol.access import Access
from rdesk.protocol.controller import MIN_WINDOW_BYTES, Caps, Controller
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.flow import Sample
from rdesk.protocol.messages import Screen
from rdesk.protocol.session import Session
from rdesk.protocol.updates import Rect, Update
from rdesk.protocol.video import CODEC_H264, VideoEnd, codec_list

__all__ = ["ViewerLink"]

class ViewerLink:
    """The host's state for one authenticated viewer.

    :param send: coroutine that writes one frame to this viewer's websocket.
    """

    def __init__(
        self,
        viewer_id: int,
        name: str,
        access: Access,
        session: Session,
        source: ScreenSource,
        cache: EncodeCache,
        send: Callable[[str | bytes], Awaitable[None]],
        *,
        quality: int,
        lossless_delay: float,
        max_fps: float = 60.0,
        max_bandwidth: float | None = None,
        video_encoders: SharedEncoders | None = None,
    ) -> None:
        self.viewer_id = viewer_id
        self.name = name
        self.access = access
        self.session = session
        self.source = source
        self.cache = cache
        #: The host's caps; the viewer's :meth:`set_prefs` may only lower them.
        self.host_caps = Caps(quality, max_fps, max_bandwidth)
        self.controller = Controller(self.host_caps, now=time.monotonic())
        session.flow.listener = self._on_sample
        #: The host's ``window`` setting: the fewest updates allowed in flight.
        self._least_window = session.flow.window
        self._send = send
        self._wake = asyncio.Event()
        #: Whether something besides an ack woke the sender since its last round (an ack
        #: alone, with nothing dirty and no timer due, leaves nothing to send).
        self._work = True
        #: Clear while a round is being encoded and sent: the viewer's cursor and clipboard
        #: messages wait for it (rdesk/host/serve/connection.py), so an update never queues
        #: behind them.
        self.idle = asyncio.Event()
        self.idle.set()
        #: Whether a frame grabbed while the current round is encoded waits for the next round.
        self._newer = False
        self.planner = Planner(source.tiles_shape, source.tile, (source.width, source.height),
                               lossless_delay)
        self._seq = 0
        #: This viewer's video streams, once it declared an H.264 decoder (and PyAV works),
        #: their encoders from the screen's shared ones (this viewer's own without them).
        self.video: VideoStreams | None = None
        self._video_encoders = video_encoders or SharedEncoders(video_encoder.H264Encoder)
        #: Streams ended outside a round, whose ``video_end`` the next round sends.
        self._ended_video: list[int] = []
        #: Rounds planned, updates and payload bytes sent, for statistics and tests.
        self.rounds = self.updates_sent = self.bytes_sent = 0

    # --- called by the source and the connection handler ---------------------------------------

    def mark(self, mask: np.ndarray) -> None:
        if self.planner.mark(mask):
            if self.video is not None:
                self.video.changed(time.monotonic(), mask)
            self._newer = not self.idle.is_set()
            self._poke()

    def _poke(self) -> None:
        """There may be work for a round: wake the sender."""
        self._work = True
        self._wake.set()

    def set_video(self, codecs: str) -> None:
        """The viewer's ``video`` message: video regions for it if it decodes H.264 and this
        host can encode it (PyAV with libx264); tiles only otherwise."""
        if CODEC_H264 in codec_list(codecs) and video_encoder.available():
            if self.video is None:
                self.video = VideoStreams(self.planner.size, self.planner.tile,
                                          self._video_encoders.member)
        elif self.video is not None:
            self._ended_video += self.video.stop()
            self.video = None
            self.controller.starting = False
            # Its tiles are ordinary lossy tiles again: the lossless refresh takes them.
            self.planner.video = np.zeros_like(self.planner.video)
        self._poke()

    def request_keyframe(self, stream: int) -> None:
        """The viewer's ``keyframe``: a key unit on ``stream`` soon (rate-limited)."""
        if self.video is not None and self.video.request_key(stream, time.monotonic()):
            self._poke()

    def resized(self) -> None:
        self._poke()

    def refresh(self) -> None:
        """The viewer asked for everything again."""
        self.planner.refresh_all()
        self._poke()

    @property
    def quality(self) -> int:
        """JPEG quality for moving tiles now (the controller's choice)."""
        return self.controller.quality

    @property
    def scale(self) -> float:
        """Downscale factor for moving tiles now (1, 1/2 or 1/4)."""
        return self.controller.scale

    def set_prefs(self, quality: int, max_fps: int, max_bandwidth: int) -> None:
        """The viewer's preferences (0 = automatic) lower the host's caps, never raise them."""
        host = self.host_caps
        bandwidths = [b for b in (host.max_bandwidth, float(max_bandwidth or 0)) if b]
        self.controller.set_caps(
            Caps(
                min(host.max_quality, quality) if quality else host.max_quality,
                min(host.max_fps, max_fps) if max_fps else host.max_fps,
                min(bandwidths) if bandwidths else None,
            )
        )
        self._poke()

    def _on_sample(self, now: float, sample: Sample) -> None:
        self.controller.on_ack(now, sample.rtt, sample.nbytes, sample.hold,
                               sample.queued_before)
        flow = self.session.flow
        flow.window_bytes = self.controller.window_bytes(now)
        video = self.video is not None and self.video.active
        flow.window = self.controller.window_updates(
            max(ROUND_RATE, self.controller.fps) if video else self.controller.fps,
            self._least_window)

    def acked(self) -> None:
        """An acknowledgement arrived: the window may have room now."""
        self._wake.set()
        self.source.room()

    def ready(self) -> bool:
        """Whether an update could be sent now (the source defers grabs until one could), and
        the round being encoded, if any, has no newer frame waiting yet: only the latest frame
        is sent, so a second grab during one round would only replace the first (at 60 frames
        a second and 20 ms rounds a grab in three, each 0.6 ms of the host's CPU and a copy of
        the X server's)."""
        return self.session.flow.can_send() and (self.idle.is_set() or not self._newer)

    # --- the sender ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Send updates until cancelled or the connection fails (the exception propagates)."""
        try:
            await self._run()
        finally:  # its streams leave the screen's shared encoders
            if self.video is not None:
                self.video.stop()

    async def _run(self) -> None:
        planner, source = self.planner, self.source
        while True:
            if not self.session.flow.can_send():
                # Only an ack can make room: wait for one, whatever timers are due. (Looping
                # on an overdue refresh here would spin and starve every other viewer.)
                self._wake.clear()
                await self._wake.wait()
                continue
            if (source.width, source.height) != planner.size:
                # Resized while we waited (a resize, a monitor switch): the planner's tile
                # arrays must take the new shape before it reads the source's again.
                await self._send_resize()
            timeout = planner.refresh_due_in(time.monotonic(), source.last_change)
            if self.video is not None:  # a live stream is checked for its end meanwhile
                check = self.video.next_check(time.monotonic())
                if check is not None:
                    timeout = check if timeout is None else min(timeout, check)
            # Already woken (a grab marked tiles during the last round, as in every round of
            # a video): go on without the task and timers of a wait that would return at once.
            due = None if timeout is None else time.monotonic() + timeout
            if (timeout is None or timeout > 0) and not self._wake.is_set():
                await wait_at_most(self._wake.wait(), timeout)
            self._wake.clear()
            if not self.session.flow.can_send():
                continue  # the next ack wakes us
            if (not self._work and (due is None or time.monotonic() < due)
                    and not planner.dirty.any()):
                # Only an ack: nothing to send (every update of a pan is followed by one;
                # the planning of an empty round was 0.4-0.5 ms of the host's loop a frame).
                continue
            if (source.width, source.height) != planner.size:
                await self._send_resize()
            now = time.monotonic()
            self.controller.update(now)
            busy = planner.paced(source.moving)
            wait = self.controller.next_send_at(now, frame_rate=busy) - now
            if wait > 0:  # frame-rate or bandwidth cap: changes keep accumulating meanwhile
                await asyncio.sleep(wait)
                now = time.monotonic()
            self.idle.clear()
            self._newer = self._work = False
            self.rounds += 1
            try:
                await self._send_pending(now)
            finally:
                self.idle.set()
                if self._newer:  # the grab deferred meanwhile may go ahead
                    self.source.room()

    async def _send_resize(self) -> None:
        size = (self.source.width, self.source.height)
        self.planner.resize(self.source.tiles_shape, size)
        if self.video is not None:  # the streams' regions are of the old screen
            self._ended_video += self.video.stop()
            self.video = VideoStreams(size, self.planner.tile, self._video_encoders.member)
        await self._end_video()
        await self._send(self.session.send(Screen(*size), time.monotonic()))

    async def _send_pending(self, now: float) -> None:
        source, planner = self.source, self.planner
        frame, frame_id = source.frame, source.frame_id
        if frame.shape[1::-1] != planner.size:
            return  # resized under us; the next round sends the Screen message first
        if await self._send_scroll(frame, frame_id, now):
            return
        # Take the work before awaiting: tiles marked while we encode stay dirty for next time.
        video = self._plan_video(frame, now)
        await self._end_video()
        round_ = planner.take_round(now, source.last_change, source.moving,
                                    self.controller.refresh_budget(now))
        if round_ is None and video is None:
            return
        # Where the viewer holds exactly what was sent, it needs only the pixels that differ
        # from it: a glyph, not the four tiles it touches.
        frames: list[EncodedRect] = []
        if video is None:  # tiles only: as before video existed
            assert round_ is not None
            tiles = await self._encode(frame, frame_id, round_.jobs, base=planner.held.sent,
                                       trim=round_.trim)
        elif round_ is None:  # video only (a full-screen pan): one hop, no tasks to gather
            tiles, frames = [], await self._encode_video(frame, video)
        else:  # the video frames and the tiles side by side
            tiles, frames = await asyncio.gather(
                self._encode(frame, frame_id, round_.jobs, base=planner.held.sent,
                             trim=round_.trim),
                self._encode_video(frame, video),
            )
        kept, exact = planner.settle(round_, tiles, frame) if round_ is not None else ([], False)
        # Video first: a tile in the same update over the region is painted after it.
        if frames or kept:
            await self._send_rects([*frames, *kept], exact and not frames, now)
        # (Nothing to send: the dirty tiles came back to what the viewer holds.)

    async def _send_scroll(self, frame: np.ndarray, frame_id: int, now: float) -> bool:
        """Send a vertical scroll as a copy of pixels the viewer already has, if it is one.

        The scroll is looked for between the pixels the host sent (``planner.held.sent``, what
        the viewer holds, exactly or lossy) and ``frame``, so the copy moves only pixels the
        host knows the viewer has; lossy ones stay flagged lossy where they land (docs/
        adaptation.md, "Scrolling"). The copy goes first in the update; then the rects where
        the copied picture still differs from the screen (the newly exposed strip). Returns
        False, having sent nothing, when this is not a scroll.
        """
        planner = self.planner
        region = planner.scroll_region(frame)
        base = planner.held.sent
        if region is None or base is None:
            return False
        # Take the work before awaiting: tiles marked meanwhile changed after ``frame`` and
        # must stay dirty; if this is no scroll, the work is given back.
        taken = planner.take_dirty()
        plan = await asyncio.to_thread(plan_scroll, base, frame, region, planner.tile)
        if plan is None:
            planner.give_back(taken)
            planner.scroll_missed()
            return False
        carry = max(float(MIN_WINDOW_BYTES), self.controller.carry_rate(now))
        # A quarter of the refresh budget for lossy tiles the copy moves: the scroll updates
        # themselves must keep flowing (a whole budget per scroll halved their rate at 2 Mbit).
        scroll = planner.scroll(plan, carry, self.controller.refresh_budget(now) // 4)
        encoded = await self._encode(frame, frame_id, scroll.jobs)
        exact = planner.settle_scroll(scroll, encoded, frame)
        await self._send_rects([scroll.copy, *encoded], exact, now)
        return True

    def _plan_video(self, frame: np.ndarray, now: float) -> VideoPlan | None:
        """This round's video frames; their tiles are given to the video (not tile-encoded,
        held lossy). ``None`` when this viewer has no video work."""
        video, planner = self.video, self.planner
        if video is None:
            return None
        cap = self.controller.caps.max_bandwidth
        # The link rate from large updates (the first full screen gives one); not the peak
        # throughput, which a still screen before the motion leaves near nothing.
        link = self.controller.estimator.link_rate
        plan = video.plan(now, planner.dirty, level=self.controller.stream_level, cap_bps=cap,
                          link_bps=link * 8 if link else None,
                          accept=lambda rect: is_photo_like(frame, rect))
        self._ended_video += plan.ended
        planner.give_to_video(video.detector.mask(), plan.repaint, frame)
        # A large change still becoming video is drawn small until its stream starts (this
        # round's tiles are encoded after this; the stream itself reads the level unheld):
        # docs/adaptation.md, "Video regions".
        self.controller.starting = video.becoming(now)
        return plan if plan.jobs else None

    async def _end_video(self) -> None:
        """Send ``video_end`` for the streams that ended (before any update after them)."""
        ended, self._ended_video = self._ended_video, []
        for stream in ended:
            await self._send(self.session.send(VideoEnd(stream), time.monotonic()))

    async def _encode_video(self, frame: np.ndarray, plan: VideoPlan | None
                            ) -> list[EncodedRect]:
        """Encode a round's video frames off the event loop."""
        video = self.video
        if plan is None or video is None:
            return []
        return await asyncio.get_running_loop().run_in_executor(
            None, video.encode, frame, plan.jobs)

    async def _encode(self, frame: np.ndarray, frame_id: int, jobs: list[Job],
                      base: np.ndarray | None = None, trim: list[bool] | None = None
                      ) -> list[EncodedRect]:
        """Encode ``jobs`` at the controller's quality and scale, off the event loop. Lossy
        jobs of flat content (text) are encoded exactly instead: smaller than their JPEG, and
        owing no refresh (``encode_rect``'s ``exact_if_flat``)."""
        return await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: encode_round(self.cache, frame, frame_id, jobs, quality=self.quality,
                                 scale=self.scale, base=base, trim=trim, exact_if_flat=True),
        )

    async def _send_rects(self, encoded: list[EncodedRect], exact: bool, now: float) -> None:
        """Send ``encoded`` as one round of updates; ``now`` is when its pixels were taken.
        A round with video frames takes its next slot at least at :data:`ROUND_RATE` (a little
        above the streams' frame rate), whatever the level."""
        video = any(enc.encoding is Encoding.H264 for enc in encoded)
        self.controller.on_round(now, ROUND_RATE if video else None)
        for rects, last in batches(encoded, self.planner.size):
            batch = tuple(Rect(e.x, e.y, e.w, e.h, e.encoding, e.payload) for e in rects)
            while not self.session.flow.can_send():  # a big refresh spans several updates
                self._wake.clear()
                await self._wake.wait()
            update = Update(self._seq, int(now * 1e6), batch, exact=exact and last)
            self._seq += 1
            sent_at = time.monotonic()
            frame = self.session.send(update, sent_at)
            self.controller.on_sent(sent_at, len(frame))
            await self._send(frame)
            self.updates_sent += 1
            self.bytes_sent += len(frame)
