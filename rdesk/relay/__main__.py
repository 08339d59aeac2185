"""``python -m rdesk.relay ...``: the ``rdesk relay`` verb on its own (same flags)."""

from __future__ import annotations

import argparse
import logging
import sys

from rdesk.relay.main import add_relay_parser, run_relay_verb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rdesk.relay")
    sub = parser.add_subparsers(dest="command", required=True)
    add_relay_parser(sub)
    args = parser.parse_args(["relay", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="rdesk: %(levelname)s: %(message)s")
    return run_relay_verb(args)


if __name__ == "__main__":
    sys.exit(main())
