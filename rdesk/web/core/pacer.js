// The transfer pacer of the page's uploads: a mirror of rdesk/protocol/pacer.py (read its
// docstrings for the why; tests/web/test_pacer_parity.py holds the two to the same answers).
// Unconfirmed bytes are kept to rate × (min round trip + QUEUE_TARGET) plus the one stored
// chunk whose credit the host holds back; the rate is the largest delivery sample of the last
// BW_ROUNDS rate windows, each over the longer of the acks' and the sends' time. Pure: every
// call takes `now` (seconds).

import { XFER } from "./codec.js";

export class Pacer {
  constructor(target = XFER.QUEUE_TARGET) {
    this.target = target;
    this.sent = []; // [send time, bytes] of each unconfirmed chunk, oldest first
    this.head = 0; // this.sent[head] is the oldest (no shift(): O(1) per credit)
    this.inflight = 0;
    this.minRtt = null;
    this.rate = null;
    this.confirmed = []; // [time, bytes confirmed so far, newest chunk's send time]
    this.total = 0;
    this.samples = []; // [time, sample], samples decreasing: the sliding maximum
  }

  onSent(bytes, now) {
    this.sent.push([now, bytes]);
    this.inflight += bytes;
  }

  onCredit(chunks, now) {
    if (this.head >= this.sent.length) return; // the first grant confirms nothing
    let confirmed = 0, newest = 0;
    const end = Math.min(this.sent.length, this.head + chunks);
    for (; this.head < end; this.head++) {
      newest = this.sent[this.head][0];
      confirmed += this.sent[this.head][1];
    }
    if (this.head > 1024) {
      this.sent = this.sent.slice(this.head);
      this.head = 0;
    }
    this.inflight -= confirmed;
    const rtt = Math.max(0, now - newest);
    this.minRtt = this.minRtt === null ? rtt : Math.min(this.minRtt, rtt);
    this.total += confirmed;
    this.confirmed.push([now, this.total, newest]);
    const span = Math.max(XFER.RATE_WINDOW, this.minRtt);
    while (this.confirmed.length > 2 && this.confirmed[1][0] <= now - span) this.confirmed.shift();
    const [since, before, sentThen] = this.confirmed[0];
    if (now - since < span / 2 || this.total <= before) return;
    // Bytes are never delivered faster than they were sent, nor than they were confirmed.
    const sample = (this.total - before) / Math.max(now - since, newest - sentThen);
    const samples = this.samples;
    while (samples.length && samples[samples.length - 1][1] <= sample) samples.pop();
    samples.push([now, sample]);
    while (samples[0][0] < now - XFER.BW_ROUNDS * span) samples.shift();
    this.rate = samples[0][1];
  }

  /** Bytes for the next chunk: small on a slow link, large on a fast one (Pacer.chunk_size). */
  chunkSize() {
    if (this.rate === null || this.minRtt === null) return XFER.MIN_CHUNK;
    const want = Math.max(this.rate * XFER.CHUNK_TIME, (this.rate * (this.minRtt + this.target)) / XFER.CHUNKS_PER_BUDGET);
    return Math.floor(Math.min(XFER.CHUNK, Math.max(XFER.MIN_CHUNK, want)));
  }

  get budget() {
    if (this.rate === null || this.minRtt === null) return 4 * XFER.MIN_CHUNK;
    // Plus the credit a receiver holds back (CREDIT_BATCH - 1 stored chunks).
    const chunk = this.chunkSize();
    return Math.max(2 * chunk, this.rate * (this.minRtt + this.target) + (XFER.CREDIT_BATCH - 1) * chunk);
  }

  /** While the budget is not used up, even if this chunk overshoots it (Pacer.allows). */
  allows(_bytes) {
    return this.inflight < this.budget;
  }
}
