// The host's screen as pixels: decoding an update's rects (images, copies, video frames) into a
// drawing target passed in.
//
// The target is a 2D context (a canvas's or an OffscreenCanvas's): this module draws into it
// and resizes its `.canvas`, and looks nothing up itself. Image headers are checked
// (images.js) before any image is decoded.

import { ENCODING, ProtocolError, copySource } from "./codec.js";
import { checkImageHeader, imageType } from "./images.js";
import { CODECS } from "./video.js";

/** Decode one image rect's payload into an ImageBitmap; ProtocolError if it cannot be decoded. */
export function decodeImage(rect) {
  const blob = new Blob([rect.payload], { type: imageType(rect.encoding) });
  return createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" }).catch(() => {
    throw new ProtocolError("cannot decode an image");
  });
}

/**
 * Paints updates into `ctx` (CanvasRenderingContext2D or OffscreenCanvasRenderingContext2D).
 * `decode(rect)` turns an image rect into something drawImage accepts, with width, height and
 * close(); the default is decodeImage. `video` (a VideoStreams, video.js) decodes H264 rects;
 * null (the default) declares no video decoder, and a host that sends video anyway is at fault.
 */
export class FrameBuffer {
  constructor(ctx, { decode = decodeImage, video = null } = {}) {
    this.ctx = ctx;
    this.decode = decode;
    this.video = video;
  }

  /**
   * A session became active: H264 rects' `keyframe` requests go to `send`. Returns the
   * `video` message's codecs to declare ("" for none).
   */
  startVideo(send) {
    if (this.video === null) return "";
    this.video.attach(send);
    return CODECS;
  }

  /** The host ended a video stream (video_end, in order with the updates). */
  endVideo(stream) {
    if (this.video !== null) this.video.end(stream);
  }

  get width() {
    return this.ctx.canvas.width;
  }

  get height() {
    return this.ctx.canvas.height;
  }

  /** A new screen size: the picture is black until the updates that follow paint it. */
  resize(width, height) {
    const { ctx } = this;
    if (this.video !== null) this.video.reset(); // streams are for the old screen
    ctx.canvas.width = width;
    ctx.canvas.height = height;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, width, height);
  }

  /**
   * Paint one update (already checked against the screen by the session). Every image and
   * video frame is decoded first, then the rects are painted strictly in order: a COPY reads
   * what the rects before it painted, a tile over a video frame is painted after it. Throws
   * ProtocolError for an image that does not match its rect. Every decoded bitmap and frame
   * is closed, whatever happens (a VideoFrame left open stalls its decoder).
   */
  async paint(update) {
    const { ctx } = this;
    const decoded = await Promise.allSettled(
      update.rects.map((rect) => {
        try {
          return this.decodeRect(rect);
        } catch (err) {
          return Promise.reject(err); // settled with the others: their pictures get closed
        }
      }),
    );
    const pictures = decoded.map((d) => (d.status === "fulfilled" ? d.value : null));
    try {
      const failed = decoded.find((d) => d.status === "rejected");
      if (failed) throw failed.reason;
      update.rects.forEach((rect, k) => {
        if (rect.encoding === ENCODING.COPY) {
          const [sx, sy] = copySource(rect);
          // Drawing a canvas onto itself copies the source first (HTML canvas spec), so
          // overlapping source and destination behave as the protocol requires.
          ctx.drawImage(ctx.canvas, sx, sy, rect.w, rect.h, rect.x, rect.y, rect.w, rect.h);
          return;
        }
        const picture = pictures[k];
        if (picture === null) return; // a video unit dropped or failed: its last pixels stay
        if (rect.encoding === ENCODING.H264) {
          // Its SPS was cropped to the rect; the frame fills the rect whatever aspect ratio
          // the bitstream claims (bitstream contents never close the connection).
          ctx.drawImage(picture, rect.x, rect.y, rect.w, rect.h);
          return;
        }
        if (picture.width > rect.w || picture.height > rect.h) throw new ProtocolError("image larger than its rect");
        if (picture.width === rect.w && picture.height === rect.h) {
          ctx.drawImage(picture, rect.x, rect.y);
        } else {
          ctx.imageSmoothingEnabled = true;
          ctx.drawImage(picture, rect.x, rect.y, rect.w, rect.h); // the host downscaled it
        }
      });
    } finally {
      for (const p of pictures) if (p) p.close();
    }
  }

  /** The picture of one rect: null for a COPY, an ImageBitmap, a VideoFrame or null (video). */
  decodeRect(rect) {
    if (rect.encoding === ENCODING.COPY) return null;
    if (rect.encoding === ENCODING.H264) {
      if (this.video === null) throw new ProtocolError("video rect to a viewer that declared no video decoder");
      return this.video.decode(rect);
    }
    checkImageHeader(rect);
    return this.decode(rect);
  }
}
