// Node's test runner over tests/relay/tunnel_vectors.mjs; the vectors' path is in
// RDESK_TUNNEL_VECTORS (written by tests/relay/test_tunnel_js.py).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import * as tunnel from "../../rdesk/web/core/tunnel.js";
import { check } from "./tunnel_vectors.mjs";

test("the browser tunnel matches the Python tunnel byte for byte", async () => {
  const vectors = JSON.parse(readFileSync(process.env.RDESK_TUNNEL_VECTORS, "utf8"));
  assert.deepEqual(await check(tunnel, vectors), []);
});
