// The host's screen as pixels: decoding an update's rects into a drawing target passed in.
//
// The target is a 2D context (a canvas's or an OffscreenCanvas's): this module draws into it
// and resizes its `.canvas`, and looks nothing up itself. Image headers are checked
// (images.js) before any image is decoded.

import { ENCODING, ProtocolError, copySource } from "./codec.js";
import { checkImageHeader, imageType } from "./images.js";

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
 * close(); the default is decodeImage.
 */
export class FrameBuffer {
  constructor(ctx, { decode = decodeImage } = {}) {
    this.ctx = ctx;
    this.decode = decode;
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
    ctx.canvas.width = width;
    ctx.canvas.height = height;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, width, height);
  }

  /**
   * Paint one update (already checked against the screen by the session). Every image is
   * decoded first, then the rects are painted strictly in order: a COPY reads what the rects
   * before it painted. Throws ProtocolError for an image that does not match its rect.
   */
  async paint(update) {
    const { ctx } = this;
    const bitmaps = await Promise.all(
      update.rects.map((rect) => {
        if (rect.encoding === ENCODING.COPY) return null;
        checkImageHeader(rect);
        return this.decode(rect);
      }),
    );
    try {
      update.rects.forEach((rect, k) => {
        if (rect.encoding === ENCODING.COPY) {
          const [sx, sy] = copySource(rect);
          // Drawing a canvas onto itself copies the source first (HTML canvas spec), so
          // overlapping source and destination behave as the protocol requires.
          ctx.drawImage(ctx.canvas, sx, sy, rect.w, rect.h, rect.x, rect.y, rect.w, rect.h);
          return;
        }
        const bitmap = bitmaps[k];
        if (bitmap.width > rect.w || bitmap.height > rect.h) throw new ProtocolError("image larger than its rect");
        if (bitmap.width === rect.w && bitmap.height === rect.h) {
          ctx.drawImage(bitmap, rect.x, rect.y);
        } else {
          ctx.imageSmoothingEnabled = true;
          ctx.drawImage(bitmap, rect.x, rect.y, rect.w, rect.h); // the host downscaled it
        }
      });
    } finally {
      for (const b of bitmaps) if (b) b.close();
    }
  }
}
