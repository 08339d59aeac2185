"""The file transfer verbs: ``rdesk put``, ``rdesk get``, ``rdesk ls`` (docs/transfer.md).

``put`` exits 0 only once the host confirmed the SHA-256 of each file it stored; ``get`` only
once the bytes received hash to what the host announced and sit under their final name. A
progress bar is drawn on stderr when it is a terminal, nothing when it is not; ``--json``
prints one JSON object per line on stdout instead (``progress`` lines, then ``done``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from rdesk.cli.common import UsageError, add_verb, one_line
from rdesk.cli.view import add_viewer_options, with_viewer
from rdesk.client.errors import ConnectionLost
from rdesk.client.running import Connection
from rdesk.client.transfer import Meter, TransferError, Transfers

__all__ = ["add_parsers"]

#: Progress output at most this often (seconds): a bar need not redraw per 11 KiB chunk.
_EVERY = 0.1


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``put``, ``get`` and ``ls``."""
    put = add_verb(sub, "put", help="send files into the host's transfer folder")
    add_viewer_options(put)
    put.add_argument("local", nargs="+", type=Path, metavar="LOCAL", help="files to send")
    put.add_argument("--to", metavar="NAME", help="name to store it under (one file only)")
    put.add_argument("--json", action="store_true", help="JSON progress lines on stdout")
    put.set_defaults(handler=_cmd_put)

    get = add_verb(sub, "get", help="fetch a file of the host's transfer folder")
    add_viewer_options(get)
    get.add_argument("remote", metavar="REMOTE", help="its name in the transfer folder")
    get.add_argument("-o", "--output", type=Path, help="local file (default: ./REMOTE)")
    get.add_argument("--json", action="store_true", help="JSON progress lines on stdout")
    get.set_defaults(handler=_cmd_get)

    ls = add_verb(sub, "ls", help="list the host's transfer folder")
    add_viewer_options(ls)
    ls.add_argument("--json", action="store_true", help="one JSON object per file")
    ls.set_defaults(handler=_cmd_ls)


class _Reporter:
    """Draws progress where the user asked: a bar on a terminal, JSON lines, or nothing."""

    def __init__(self, json_out: bool, err: TextIO = sys.stderr, out: TextIO = sys.stdout
                 ) -> None:
        self.json_out, self.err, self.out = json_out, err, out
        self.bar = not json_out and err.isatty()

    def progress(self, label: str, total: int) -> tuple[Meter, Callable[[int, int], None]]:
        meter = Meter(total, time.monotonic())
        shown = [meter.start - _EVERY]

        def update(done: int, _total: int) -> None:
            now = time.monotonic()
            meter.update(done, now)
            if now - shown[0] < _EVERY and done < total:
                return
            shown[0] = now
            if self.json_out:
                self._json(event="progress", file=label, done=done, total=total,
                           rate=round(meter.rate), left=meter.left)
            elif self.bar:
                self.err.write("\r" + meter.line(label) + "\x1b[K")
                self.err.flush()

        return meter, update

    def finished(self, **fields: object) -> None:
        if self.bar:
            self.err.write("\n")
        if self.json_out:
            self._json(event="done", **fields)
        else:
            verb = "stored" if fields.get("direction") == "upload" else "saved"
            print(f"rdesk: {verb} {fields['name']} ({fields['size']} bytes, "
                  f"SHA-256 {fields['sha256']})", file=self.out, flush=True)

    def _json(self, **fields: object) -> None:
        print(json.dumps(fields), file=self.out, flush=True)


def _run(args: argparse.Namespace, body: Callable[[Transfers], object]) -> int:
    async def run(conn: Connection) -> object:
        return await body(Transfers(conn))  # type: ignore[misc]

    try:
        with_viewer(args, run)
    except (TransferError, ConnectionLost, OSError) as exc:
        raise UsageError(one_line(exc)) from None
    return 0


def _cmd_put(args: argparse.Namespace) -> int:
    if args.to is not None and len(args.local) != 1:
        raise UsageError("--to names one file: give a single LOCAL")
    for local in args.local:
        if not local.is_file():
            raise UsageError(f"{local}: not a file")
    report = _Reporter(args.json)

    async def body(transfers: Transfers) -> None:
        for local in args.local:
            name = args.to if args.to is not None else local.name
            _, update = report.progress(name, local.stat().st_size)
            done = await transfers.put(local, name, update)
            report.finished(direction="upload", file=str(local), name=done.name,
                            size=done.size, sha256=done.sha256)

    return _run(args, body)


def _cmd_get(args: argparse.Namespace) -> int:
    dest = args.output if args.output is not None else Path(args.remote)
    report = _Reporter(args.json)

    async def body(transfers: Transfers) -> None:
        drawn: dict[str, Callable[[int, int], None]] = {}

        def update(done: int, total: int) -> None:
            if "bar" not in drawn:  # the size is known once the host accepted
                drawn["bar"] = report.progress(args.remote, total)[1]
            drawn["bar"](done, total)

        size, sha = await transfers.get(args.remote, dest, update)
        report.finished(direction="download", file=args.remote, name=str(dest), size=size,
                        sha256=sha)

    return _run(args, body)


def _cmd_ls(args: argparse.Namespace) -> int:
    async def body(transfers: Transfers) -> None:
        for name, size in await transfers.listing():
            if args.json:
                print(json.dumps({"name": name, "size": size}), flush=True)
            else:
                print(f"{size:>14}  {name}", flush=True)

    return _run(args, body)
