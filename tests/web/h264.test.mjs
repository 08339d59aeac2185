// core/h264.js against the shared vectors (tests/vectors/h264.json, written from the Python
// parser), and the video header and rect checks the codec uses.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { checkKeyUnit, codecString, H264Error, hasSlice, nalTypes, nalUnits, parseSps, parseVideoHeader, spsColour, videoRectFault } from "../../rdesk/web/core/h264.js";

const VECTORS = JSON.parse(readFileSync(new URL("../vectors/h264.json", import.meta.url), "utf-8"));
const bytes = (b64) => new Uint8Array(Buffer.from(b64, "base64"));

test("the shared vectors are there, both kinds, both outcomes", () => {
  const outcomes = new Set(VECTORS.map((v) => `${v.kind}:${v.expect === "error"}`));
  assert.deepEqual([...outcomes].sort(), ["key:false", "key:true", "sps:false", "sps:true"]);
});

for (const v of VECTORS) {
  test(`vector: ${v.name}`, () => {
    const data = bytes(v.data);
    let got;
    try {
      got = v.kind === "sps" ? parseSps(data) : checkKeyUnit(data, v.size);
    } catch (err) {
      assert.ok(err instanceof H264Error, `${err}`); // never anything else
      got = "error";
    }
    assert.deepEqual(got, v.expect);
  });
}

test("codec strings come from profile, constraint flags and level", () => {
  assert.equal(codecString({ profile_idc: 66, constraint_flags: 0xc0, level_idc: 13 }), "avc1.42C00D");
  assert.equal(codecString({ profile_idc: 77, constraint_flags: 0x40, level_idc: 40 }), "avc1.4D4028");
});

test("the video header: stream < 8, only the key flag, reserved zero, a unit after it", () => {
  assert.deepEqual(parseVideoHeader(Uint8Array.of(7, 1, 0, 0, 9)), { stream: 7, key: true });
  assert.deepEqual(parseVideoHeader(Uint8Array.of(0, 0, 0, 0, 9)), { stream: 0, key: false });
  for (const bad of [[8, 1, 0, 0, 9], [0, 2, 0, 0, 9], [0, 0, 0, 1, 9], [0, 0, 1, 0, 9], [0, 1, 0, 0], []]) {
    assert.equal(parseVideoHeader(Uint8Array.from(bad)), null, `${bad}`);
  }
  const payload = Uint8Array.of(0, 1, 0, 0, 9);
  assert.equal(videoRectFault({ w: 16, h: 16, payload }), null);
  assert.match(videoRectFault({ w: 17, h: 16, payload }), /even/);
  assert.match(videoRectFault({ w: 16, h: 14, payload }), /at least 16/);
  assert.match(videoRectFault({ w: 16, h: 16, payload: Uint8Array.of(9, 1, 0, 0, 9) }), /header/);
});

test("NAL units split at 3- and 4-byte start codes; a delta unit needs a slice", () => {
  const unit = Uint8Array.of(9, 0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 0, 0, 1, 0x41, 3, 0);
  assert.deepEqual(nalTypes(unit), [7, 8, 1]);
  assert.ok(hasSlice(unit));
  assert.ok(!hasSlice(Uint8Array.of(0, 0, 1, 0x06, 5))); // SEI only
  assert.deepEqual(nalTypes(Uint8Array.of(0, 0, 1, 0, 0, 1)), []);
});

test("the VUI's colour description: libx264's BT.601 tag, none in a bare SPS", () => {
  const spsOf = (name) => {
    const unit = bytes(VECTORS.find((v) => v.name === name).data);
    return nalUnits(unit).find((u) => (u[0] & 0x1f) === 7);
  };
  assert.deepEqual(spsColour(spsOf("libx264 64x48")), { primaries: 6, transfer: 6, matrix: 6, fullRange: false });
  assert.equal(spsColour(spsOf("1080p key unit")), null); // vui_parameters_present_flag 0
  assert.throws(() => spsColour(bytes(VECTORS.find((v) => v.name === "truncated").data)), H264Error);
});
