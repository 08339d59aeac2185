// Whether this page decodes video, and the decoder table it uses (core/video.js over WebCodecs).
//
// H.264 is declared to the host only when the browser has WebCodecs' VideoDecoder (secure
// contexts only: the https page, or localhost) and says it can decode the profiles the host may
// send. `?video=off` in the page's address turns video off (the host then sends tiles only).
// <body data-video> says which: "h264", "off" (asked for), "unavailable", or "probing".

import { VideoStreams } from "../core/video.js";
import { setStatus } from "./status.js";

// Constrained Baseline and Main at level 4.0 (1080p at 30 fps), the profiles of the wire.
const PROBES = ["avc1.42E028", "avc1.4D4028"];

/** Whether the page's address asks for no video. */
export function videoTurnedOff(search = location.search) {
  const value = new URLSearchParams(search).get("video");
  return value !== null && ["off", "0", "false", "no"].includes(value.toLowerCase());
}

/** Whether WebCodecs here decodes every profile the host may send (never throws). */
export async function h264Supported() {
  if (!globalThis.isSecureContext || typeof VideoDecoder === "undefined" || typeof EncodedVideoChunk === "undefined") {
    return false;
  }
  try {
    const answers = await Promise.all(PROBES.map((codec) =>
      VideoDecoder.isConfigSupported({ codec, codedWidth: 1920, codedHeight: 1080, optimizeForLatency: true })));
    return answers.every((answer) => answer.supported === true);
  } catch (err) {
    return false;
  }
}

/** Give `framebuffer` its video streams if this page may and can decode H.264. */
export async function enableVideo(framebuffer) {
  if (videoTurnedOff()) {
    setStatus("video", "off");
    return;
  }
  setStatus("video", "probing");
  const ok = await h264Supported();
  if (ok) framebuffer.video = new VideoStreams({ VideoDecoder, EncodedVideoChunk });
  setStatus("video", ok ? "h264" : "unavailable");
}
