"""File transfer in the browser page: Debian's headless Chromium against a real host on Xvfb.

Files are picked (the page's file input), dropped (a real drop event with a DataTransfer),
cancelled, and downloaded from the folder's listing (Chromium's real download); the page's
SHA-256 and name rule are checked against Python's.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rdesk.protocol.transfer import check_name
from tests.e2e import test_browser as pages
from tests.e2e.conftest import RunningHost
from tests.e2e.test_browser import CHROMIUM, PageLog, _https, _login, _wait_active, _wait_js
from tests.protocol.test_transfer import HOSTILE
from tests.xserver import Xvfb

# The browser fixtures of test_browser.py: one headless Chromium, a fresh context per test.
browser = pages.browser
page_and_log = pages.page_and_log
page = pages.page

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium missing")


def _open_files(page: Any, host: RunningHost) -> None:
    _login(page, host)
    _wait_active(page)
    page.click("#files-toggle")
    page.wait_for_selector("#transfer-panel:not([hidden])", state="attached")


def _row_state(page: Any, name: str, direction: str) -> str | None:
    state: str | None = page.evaluate(
        """([name, direction]) => {
            const row = [...document.querySelectorAll("li.transfer")].find(
                (li) => li.dataset.name === name && li.dataset.direction === direction);
            return row ? row.dataset.state : null;
        }""",
        [name, direction],
    )
    return state


def _wait_row(page: Any, name: str, direction: str, want: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while (state := _row_state(page, name, direction)) in (None, "running"):
        assert time.monotonic() < deadline, f"{direction} of {name} still {state}"
        page.wait_for_timeout(100)
    text: str = page.evaluate(
        """([name, direction]) => [...document.querySelectorAll("li.transfer")].find(
            (li) => li.dataset.name === name && li.dataset.direction === direction)
            .querySelector(".transfer-text").textContent""",
        [name, direction],
    )
    assert state == want, (state, text)
    return text


def test_pick_drop_list_and_download(xvfb: Xvfb, host_factory: Callable[..., RunningHost],
                                     page_and_log: tuple[Any, PageLog], tmp_path: Path) -> None:
    page, log = page_and_log
    inbox = tmp_path / "inbox"
    host = host_factory(xvfb.display, transfer_dir=inbox)
    _open_files(page, host)

    picked = os.urandom(700_000)
    page.set_input_files("#transfer-pick", files=[
        {"name": "picked.bin", "mimeType": "application/octet-stream", "buffer": picked}])
    text = _wait_row(page, "picked.bin", "upload", "done")
    assert f"SHA-256 {hashlib.sha256(picked).hexdigest()[:16]}" in text
    assert (inbox / "picked.bin").read_bytes() == picked

    # A real drop on the page, with bytes that are not all ASCII-safe.
    page.evaluate(
        """() => {
            const bytes = new Uint8Array(70000);
            for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) & 0xff;
            const data = new DataTransfer();
            data.items.add(new File([bytes], "dropped.bin"));
            document.getElementById("screen").dispatchEvent(
                new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
        }"""
    )
    _wait_row(page, "dropped.bin", "upload", "done")
    assert (inbox / "dropped.bin").read_bytes() == bytes((i * 7919) & 0xFF for i in range(70000))

    # The listing, and a download from it through Chromium's own download.
    (inbox / "from-host.txt").write_bytes(b"from the host\n" * 5000)
    page.click("#transfer-refresh")
    _wait_js(page, """[...document.querySelectorAll("#transfer-files li")].length === 3""")
    names = page.evaluate("""[...document.querySelectorAll("#transfer-files li")]
                             .map((li) => li.title)""")
    assert names == ["dropped.bin", "from-host.txt", "picked.bin"]
    with page.expect_download() as info:
        page.click("#transfer-files li[title='from-host.txt'] button")
    saved = tmp_path / "saved.txt"
    info.value.save_as(saved)
    assert info.value.suggested_filename == "from-host.txt"
    assert saved.read_bytes() == b"from the host\n" * 5000
    _wait_row(page, "from-host.txt", "download", "done")
    assert log.errors() == [] and log.csp_violations() == []


def test_cancel_removes_the_partial_file_and_a_path_is_refused(
        xvfb: Xvfb, host_factory: Callable[..., RunningHost], page_and_log: tuple[Any, PageLog],
        tmp_path: Path) -> None:
    page, log = page_and_log
    inbox = tmp_path / "inbox"
    host = host_factory(xvfb.display, transfer_dir=inbox)
    _open_files(page, host)
    # A file on disk, handed over by path: a 40 MB buffer through the browser's debugging
    # pipe took longer than set_input_files allows on a loaded machine. Large, so the
    # upload still runs when the cancel is clicked.
    big = tmp_path / "big.bin"
    with open(big, "wb") as file:
        for _ in range(200):
            file.write(os.urandom(1 << 20))
    page.set_input_files("#transfer-pick", files=[str(big)])
    _wait_js(page, """(() => { const t = document.querySelector("li.transfer .transfer-text");
                               return t && t.textContent.includes("MB/s"); })()""")
    page.click("li.transfer[data-name='big.bin'] .transfer-cancel")
    _wait_row(page, "big.bin", "upload", "cancelled")
    deadline = time.monotonic() + 10
    while os.listdir(inbox):
        assert time.monotonic() < deadline, os.listdir(inbox)
        time.sleep(0.05)

    # The page's own check refuses a path before anything is sent.
    page.set_input_files("#transfer-pick", files=[
        {"name": "CON.txt", "mimeType": "text/plain", "buffer": b"x"}])
    assert "reserved device name" in _wait_row(page, "CON.txt", "upload", "failed")
    assert os.listdir(inbox) == []
    assert log.errors() == [] and log.csp_violations() == []


def test_the_pages_sha256_and_name_rule_match_pythons(host: RunningHost, page: Any) -> None:
    page.goto(_https(host))
    lengths = [0, 1, 3, 55, 56, 57, 63, 64, 65, 127, 128, 1000, 100_003]
    digests = page.evaluate(
        """async (lengths) => {
            const T = await import("/core/transfer.js");
            return lengths.map((n) => {
                const bytes = new Uint8Array(n);
                for (let i = 0; i < n; i++) bytes[i] = (i * 31 + 7) & 0xff;
                const sha = new T.Sha256();
                // In uneven pieces: the incremental path, not one call.
                for (let i = 0, step = 17; i < n; i += step, step = 17 + (i % 50)) {
                    sha.update(bytes.subarray(i, i + step));
                }
                return sha.hex();
            });
        }""",
        lengths,
    )
    for n, digest in zip(lengths, digests, strict=True):
        assert digest == hashlib.sha256(bytes((i * 31 + 7) & 0xFF for i in range(n))).hexdigest()
    names = [*HOSTILE, "report.pdf", "数据.csv", "x" * 255, "con-notes.txt", "a..b"]
    refused = page.evaluate(
        """async (names) => {
            const T = await import("/core/transfer.js");
            return names.map((n) => T.checkName(n) !== null);
        }""",
        names,
    )
    assert refused == [check_name(n) is not None for n in names]


def test_the_pages_chunk_codec_matches_pythons(host: RunningHost, page: Any) -> None:
    # Every frame Python's codec refuses, the page refuses; what it takes, the page reads the
    # same (id, offset, bytes); what the page encodes, Python decodes.
    from rdesk.protocol import codec
    from rdesk.protocol.errors import RemoteProtocolError
    from rdesk.protocol.transfer import CHUNK, XferData
    from tests.protocol.test_transfer import _frame

    frames = [
        bytes(codec.encode(XferData(7, 1 << 39, b"\x00\xffabc"))),
        bytes(codec.encode(XferData(0xFFFFFFFF, 0, os.urandom(CHUNK)))),
        _frame(reserved=1), _frame(reserved16=1), _frame(length=4), _frame(length=2),
        _frame(payload=b""), _frame(offset=(1 << 40) + 1), _frame()[:19],
        _frame(payload=b"x" * (CHUNK + 1)),
    ]
    page.goto(_https(host))
    results = page.evaluate(
        """async (frames) => {
            const C = await import("/core/chunks.js");
            const out = frames.map((f) => {
                try {
                    const m = C.decodeChunk(new Uint8Array(f));
                    return [m.id, m.offset, Array.from(m.data.subarray(0, 8)), m.data.length];
                } catch (e) { return ["refused", e.code]; }
            });
            const data = new Uint8Array([1, 2, 3]);
            const mine = C.encodeChunk({ id: 9, offset: 2 ** 33 + 5, data });
            return [out, Array.from(mine)];
        }""",
        [list(f) for f in frames],
    )
    decoded, mine = results
    for frame, got in zip(frames, decoded, strict=True):
        try:
            want = codec.decode(frame)
        except RemoteProtocolError as exc:
            assert got == ["refused", int(exc.code)], got
        else:
            assert isinstance(want, XferData)
            assert got == [want.id, want.offset, list(want.data[:8]), len(want.data)]
    assert codec.decode(bytes(mine)) == XferData(9, 2**33 + 5, b"\x01\x02\x03")
