"""``tricornctl``: talk to a running master over its control socket (``--control-socket``).

    tricornctl -s /run/tricorn.ctl workers | stats | config | add [N] | remove [N] | reload
               | reopen | shutdown [graceful|quick]

Prints the master's JSON answer (pretty-printed); exits 0 if it says ``ok``, 1 if not, 2 when
the socket cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from .control import request

__all__ = ["main"]

COMMANDS = ("workers", "stats", "config", "add", "remove", "reload", "reopen", "shutdown")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tricornctl", description=__doc__.split("\n\n")[0])
    parser.add_argument("-s", "--socket", default=os.environ.get("TRICORN_CONTROL_SOCKET"),
                        help="the master's control socket (default: $TRICORN_CONTROL_SOCKET)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait")
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("argument", nargs="?", help="N for add/remove; graceful|quick for shutdown")
    args = parser.parse_args(argv)
    if not args.socket:
        parser.error("no control socket: give -s PATH or set TRICORN_CONTROL_SOCKET")
    extra: dict[str, object] = {}
    if args.command in ("add", "remove") and args.argument is not None:
        if not args.argument.isdigit():
            parser.error(f"{args.command} takes a number")
        extra["count"] = int(args.argument)
    elif args.command == "shutdown" and args.argument is not None:
        extra["mode"] = args.argument
    try:
        answer = request(args.socket, args.command, timeout=args.timeout, **extra)
    except (OSError, ValueError) as exc:
        print(f"tricornctl: cannot talk to {args.socket}: {exc}", file=sys.stderr)
        return 2
    json.dump(answer, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0 if answer.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
