// Video streams (docs/protocol.md, "Video"): the page's table of H.264 decoders, one per stream,
// and the rules of the wire around them. No DOM: the WebCodecs classes (VideoDecoder,
// EncodedVideoChunk) are passed in, so Node tests run it over a fake decoder.
//
// - A stream starts with a key unit. Its SPS is checked (h264.js) before a decoder is made or
//   fed: one SPS cropped to the rect's size, Baseline or Main, 4:2:0 8-bit, progressive. A
//   refused key unit drops the stream's decoder and asks for a key unit (`keyframe`).
// - A non-key unit for a stream without a decoder, or for another rect than its key unit's, or
//   one without a coded slice, is dropped and a key unit asked for.
// - A decoder error, or a frame not out of the decoder within DECODE_TIMEOUT_MS (a unit the
//   decoder swallowed would otherwise hold the paint queue for ever), drops that stream's
//   decoder only; its last pixels stay and a key unit is asked for. Nothing here closes the
//   connection: bad bitstream contents never do.
// - Key unit requests are sent at most once per stream per KEYFRAME_EVERY_MS (the host would
//   ignore more).
// Decoded frames are handed to the caller, which draws and closes them; frames nobody waits
// for any more are closed here.

import {
  checkKeyUnit, codecString, H264Error, hasSlice, MAX_VIDEO_STREAMS, NAL_SPS, nalUnits, parseVideoHeader, spsColour,
  VIDEO_HEADER_SIZE,
} from "./h264.js";

export const CODECS = "h264";
export const DECODE_TIMEOUT_MS = 3000;
export const KEYFRAME_EVERY_MS = 500;

// What a stream's SPS does not say about its colours is BT.601 at limited range: what
// swscale's RGB → 4:2:0 conversion writes (the host's encoder) and what PyAV's conversion back
// assumes (the Python viewer). Left to guess, Chromium's page canvas takes another matrix.
const UNTAGGED = { primaries: "smpte170m", transfer: "smpte170m", matrix: "smpte170m" };

/**
 * The VideoDecoder configuration of a checked SPS for a w×h stream; `colour` is the SPS's
 * colour description (h264.js spsColour), null if it has none.
 */
export function decoderConfig(sps, w, h, colour = null) {
  const config = { codec: codecString(sps), codedWidth: w, codedHeight: h, optimizeForLatency: true };
  if (colour === null || colour.matrix === 2) {
    config.colorSpace = { ...UNTAGGED, fullRange: colour !== null && colour.fullRange };
  }
  return config;
}

export class VideoStreams {
  /**
   * @param {object} options
   * @param {Function} options.VideoDecoder WebCodecs' constructor (or a fake)
   * @param {Function} options.EncodedVideoChunk WebCodecs' constructor (or a fake)
   * @param {() => number} [options.now] monotonic clock, ms
   * @param {Function} [options.setTimeout] @param {Function} [options.clearTimeout]
   */
  constructor({ VideoDecoder, EncodedVideoChunk, now, setTimeout: setTimer, clearTimeout: clearTimer }) {
    this.VideoDecoder = VideoDecoder;
    this.EncodedVideoChunk = EncodedVideoChunk;
    this.now = now || (() => performance.now());
    this.setTimer = setTimer || ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = clearTimer || ((id) => clearTimeout(id));
    this.send = () => false; // set by attach(): where `keyframe` requests go
    this.streams = new Map(); // stream → {decoder, rect: "x,y,w,h", config, pending: []}
    this.lastAsked = new Map(); // stream → when a key unit was last asked for
    this.nextTimestamp = 0;
    this.counts = { decoded: 0, dropped: 0, errors: 0, keyframes: 0 };
  }

  /** A new session: forget every stream; `keyframe` requests go to `send` from now on. */
  attach(send) {
    this.reset();
    this.send = send;
    this.lastAsked.clear();
  }

  /** The screen changed or the session ended: every decoder goes. */
  reset() {
    for (const stream of [...this.streams.keys()]) this.drop(stream);
  }

  /** The host ended `stream` (video_end): free its decoder; its pixels stay. */
  end(stream) {
    this.drop(stream);
    this.lastAsked.delete(stream);
  }

  /**
   * Decode one H264 rect (the codec checked its header and shape, the session its place on
   * the screen). Resolves to the decoded VideoFrame, which the caller must close, or to null
   * when the unit was dropped or failed (the stream's last pixels stay).
   */
  decode(rect) {
    const header = parseVideoHeader(rect.payload);
    if (header === null) return Promise.resolve(null); // the codec refuses these already
    const { stream, key } = header;
    const unit = rect.payload.subarray(VIDEO_HEADER_SIZE);
    const where = `${rect.x},${rect.y},${rect.w},${rect.h}`;
    let entry = this.streams.get(stream);
    if (key) {
      let sps;
      try {
        sps = checkKeyUnit(unit, [rect.w, rect.h]);
      } catch (err) {
        if (!(err instanceof H264Error)) throw err;
        return this.refuse(stream);
      }
      const spsUnit = nalUnits(unit).find((u) => (u[0] & 0x1f) === NAL_SPS);
      const config = decoderConfig(sps, rect.w, rect.h, spsColour(spsUnit));
      if (entry && (entry.rect !== where || JSON.stringify(entry.config) !== JSON.stringify(config))) {
        this.drop(stream);
        entry = undefined;
      }
      if (!entry) {
        entry = this.open(stream, where, config);
        if (entry === null) return this.refuse(stream);
      }
    } else if (!entry || entry.rect !== where || !hasSlice(unit)) {
      return this.refuse(stream);
    }
    return this.feed(stream, entry, unit, key);
  }

  // --- inside --------------------------------------------------------------------------------

  open(stream, where, config) {
    const entry = { decoder: null, rect: where, config, pending: [] };
    try {
      entry.decoder = new this.VideoDecoder({
        output: (frame) => this.onOutput(stream, entry, frame),
        error: () => this.fail(stream, entry),
      });
      entry.decoder.configure(config);
    } catch (err) {
      this.closeDecoder(entry);
      return null;
    }
    this.streams.set(stream, entry);
    return entry;
  }

  feed(stream, entry, unit, key) {
    const timestamp = this.nextTimestamp++;
    return new Promise((resolve) => {
      const timer = this.setTimer(() => this.fail(stream, entry), DECODE_TIMEOUT_MS);
      entry.pending.push({ timestamp, resolve, timer });
      try {
        // The chunk copies `unit`: the update's buffer may go once the update is painted.
        entry.decoder.decode(new this.EncodedVideoChunk({ type: key ? "key" : "delta", timestamp, data: unit }));
      } catch (err) {
        this.fail(stream, entry); // e.g. a delta chunk where the decoder needs a key one
      }
    });
  }

  onOutput(stream, entry, frame) {
    if (this.streams.get(stream) !== entry) {
      frame.close(); // a decoder already dropped
      return;
    }
    // Decode order is output order (no B-frames): earlier chunks the decoder skipped get null.
    while (entry.pending.length && entry.pending[0].timestamp < frame.timestamp) this.settle(entry.pending.shift(), null);
    if (entry.pending.length && entry.pending[0].timestamp === frame.timestamp) {
      this.counts.decoded++;
      this.settle(entry.pending.shift(), frame);
    } else {
      frame.close(); // nobody waits for it
    }
  }

  fail(stream, entry) {
    if (this.streams.get(stream) !== entry) return;
    this.counts.errors++;
    this.drop(stream);
    this.askKeyframe(stream);
  }

  refuse(stream) {
    this.counts.dropped++;
    this.drop(stream);
    this.askKeyframe(stream);
    return Promise.resolve(null);
  }

  drop(stream) {
    const entry = this.streams.get(stream);
    if (!entry) return;
    this.streams.delete(stream);
    for (const waiting of entry.pending.splice(0)) this.settle(waiting, null);
    this.closeDecoder(entry);
  }

  closeDecoder(entry) {
    try {
      if (entry.decoder && entry.decoder.state !== "closed") entry.decoder.close();
    } catch (err) {
      /* closed meanwhile */
    }
  }

  settle(waiting, frame) {
    this.clearTimer(waiting.timer);
    waiting.resolve(frame);
  }

  askKeyframe(stream) {
    if (stream < 0 || stream >= MAX_VIDEO_STREAMS) return;
    const now = this.now();
    const last = this.lastAsked.get(stream);
    if (last !== undefined && now - last < KEYFRAME_EVERY_MS) return;
    this.lastAsked.set(stream, now);
    this.counts.keyframes++;
    this.send({ t: "keyframe", stream });
  }
}
