// The browser tunnel (rdesk/web/core/tunnel.js) against vectors the Python tunnel made
// (tests/relay/tunnel_vectors.py). `check(tunnel, vectors)` runs under Node and in Chromium
// alike and returns a list of failures (empty when every byte matches and every refusal holds).

const hex = (s) => Uint8Array.from(s.match(/../g) || [], (b) => parseInt(b, 16));
const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

async function viewer(tunnel, v, pin = null) {
  const s = globalThis.crypto.subtle;
  const jwk = v.viewer_jwk;
  const privateKey = await s.importKey("jwk", { ...jwk, ext: true }, { name: "ECDH", namedCurve: "P-256" }, false, ["deriveBits"]);
  const { d, ...pub } = jwk;
  void d;
  const publicKey = await s.importKey("jwk", { ...pub, ext: true }, { name: "ECDH", namedCurve: "P-256" }, true, []);
  return new tunnel.TunnelInitiator(v.typed_id, pin, { ephemeral: { privateKey, publicKey }, random: hex(v.viewer_random) });
}

async function refusal(promise) {
  try {
    await promise;
    return null;
  } catch (error) {
    return error;
  }
}

export async function check(tunnel, v) {
  const failures = [];
  const expect = (ok, what) => {
    if (!ok) failures.push(what);
  };

  expect(tunnel.parseHostId(v.typed_id) === v.host_id, "typed ID parses to the canonical one");
  expect((await tunnel.hostIdOf(hex(v.spki))) === v.host_id, "ID of the SPKI");

  // The happy path: same bytes both ways.
  const end = await viewer(tunnel, v, v.pin);
  expect(toHex(await end.start()) === v.client_hello, "ClientHello bytes equal Python's");
  const hello = await end.receive(hex(v.server_hello));
  expect(hello.established && hello.established.hostId === v.host_id, "established with the ID");
  expect(hello.established && hello.established.fingerprint === v.pin, "fingerprint equals Python's");
  expect(toHex(hello.finished) === v.finished, "Finished record equals Python's");
  expect((await tunnel.keyFingerprint(hello.established.certificate)) === v.pin, "key fingerprint equals Python's");
  // A pin stored before key pins (the certificate's fingerprint) still opens the tunnel.
  const legacy = await viewer(tunnel, v, v.certificate_pin);
  await legacy.start();
  const legacyHello = await legacy.receive(hex(v.server_hello));
  expect(legacyHello.established && legacyHello.established.fingerprint === v.pin, "a certificate pin still opens, the key pin comes out");
  expect(toHex(tunnel.certificateSpki(hello.established.certificate)) === v.spki, "SPKI out of the certificate");
  for (const r of v.viewer_records) {
    const sent = await end.send("text" in r ? r.text : hex(r.binary));
    expect(toHex(sent) === r.record, `viewer record equals Python's (${"text" in r ? "text" : "binary"})`);
  }
  for (const r of v.host_records) {
    const got = await end.receive(hex(r.record));
    if ("text" in r) expect(got.message === r.text, `host text record opens to ${JSON.stringify(r.text)}`);
    else expect(got.message instanceof Uint8Array && toHex(got.message) === r.binary, "host binary record opens");
  }
  const closed = await end.receive(hex(v.host_close.record));
  expect(closed.closed && closed.closed.code === v.host_close.code && closed.closed.reason === v.host_close.reason, "host close record");
  expect((await end.close()) !== null && end.state === "closed", "close answers the host's close");

  // Refusals, each before anything but the ClientHello would be sent.
  const cases = [
    ["high_s", null, "HostIdentityError", /signature/],
    ["another_hosts_key", null, "HostIdentityError", /has ID/],
    ["cut_certificate", null, "HostIdentityError", /certificate/],
    ["server_hello", v.other_pin, "HostIdentityError", /pinned/],
  ];
  for (const [name, pin, kind, pattern] of cases) {
    const e = await viewer(tunnel, v, pin);
    await e.start();
    const data = name === "server_hello" ? v.server_hello : v.refused[name];
    const error = await refusal(e.receive(hex(data)));
    expect(error !== null && error.name === kind && pattern.test(error.message), `${name} refused as ${kind}: ${error && error.message}`);
    expect(e.state === "closed" && e.sealer === null, `${name}: nothing can be sent after the refusal`);
  }
  const t = await viewer(tunnel, v, null);
  await t.start();
  await t.receive(hex(v.server_hello));
  const error = await refusal(t.receive(hex(v.refused.tampered_record)));
  expect(error !== null && error.name === "TunnelError" && /authentication/.test(error.message), "tampered record refused");
  // Replay: the first host record again after it was opened once.
  const u = await viewer(tunnel, v, null);
  await u.start();
  await u.receive(hex(v.server_hello));
  await u.receive(hex(v.host_records[0].record));
  expect((await refusal(u.receive(hex(v.host_records[0].record)))) !== null, "replayed record refused");
  return failures;
}
