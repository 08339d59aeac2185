"""The page's pacer (``rdesk/web/core/pacer.js``) gives the answers of Python's
(``rdesk/protocol/pacer.py``) on the same sends and credits: a simulated 10 Mbit/s link with
late credits and a 1 Gbit/s one (tests/protocol/test_pacer.py's simulation), replayed through
the JS copy under Node, budget, chunk size and rate compared after every credit."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import tests.protocol.test_pacer as simulation
from rdesk.protocol.pacer import Pacer

CORE = Path(__file__).resolve().parents[2] / "rdesk" / "web" / "core"
NODE = shutil.which("node")

_REPLAY = """
import { Pacer } from "%s";
const ops = JSON.parse(await new Promise((done) => {
  let text = "";
  process.stdin.on("data", (d) => { text += d; });
  process.stdin.on("end", () => done(text));
}));
const pacer = new Pacer();
const out = [];
for (const [kind, n, now] of ops) {
  if (kind === "s") pacer.onSent(n, now);
  else {
    pacer.onCredit(n, now);
    out.push([pacer.budget, pacer.chunkSize(), pacer.rate, pacer.inflight]);
  }
}
process.stdout.write(JSON.stringify(out));
"""


class _Recording(Pacer):
    """Python's pacer, noting every call and its answers after each credit."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, int, float]] = []
        self.answers: list[tuple[float, int, float | None, int]] = []

    def on_sent(self, nbytes: int, now: float) -> None:
        self.ops.append(("s", nbytes, now))
        super().on_sent(nbytes, now)

    def on_credit(self, chunks: int, now: float) -> None:
        self.ops.append(("c", chunks, now))
        super().on_credit(chunks, now)
        self.answers.append((self.budget, self.chunk_size(), self.rate, self.inflight))


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@pytest.mark.parametrize(("rate", "one_way", "jitter"), [(10e6 / 8, 0.010, 0.015),
                                                         (1e9 / 8, 0.0002, 0.0)])
def test_the_pages_pacer_answers_as_pythons(rate: float, one_way: float, jitter: float,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert NODE is not None
    made: list[_Recording] = []

    def recording() -> _Recording:
        made.append(_Recording())
        return made[-1]

    monkeypatch.setattr(simulation, "Pacer", recording)
    simulation._simulate(rate, one_way, jitter=jitter)
    (pacer,) = made
    ops = pacer.ops[:20_000]
    expected = pacer.answers[:sum(1 for kind, _, _ in ops if kind == "c")]
    result = subprocess.run(
        [NODE, "--input-type=module", "-e", _REPLAY % (CORE / "pacer.js").as_uri()],
        input=json.dumps(ops), capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    got: list[list[Any]] = json.loads(result.stdout)
    assert len(got) == len(expected) > 100
    for index, (js, py) in enumerate(zip(got, expected, strict=True)):
        budget, chunk, js_rate, inflight = js
        assert budget == pytest.approx(py[0], rel=1e-9), index
        assert (chunk, inflight) == (py[1], py[3]), index
        assert (js_rate is None) == (py[2] is None), index
        if py[2] is not None:
            assert js_rate == pytest.approx(py[2], rel=1e-9), index
