"""The `imagebuilder` command: one verb per process or tool, dispatched from a table."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


def _server(argv: Sequence[str]) -> int:
    from engine.api.server import main as server_main

    return server_main(argv)


def _toe(argv: Sequence[str]) -> int:
    from components.cli import main as toe_main

    return toe_main(argv)


def _worker(argv: Sequence[str]) -> int:
    from engine.worker_cli import main as worker_main

    return worker_main(argv)


def _up(argv: Sequence[str]) -> int:
    from engine.up import main as up_main

    return up_main(argv)


VERBS: dict[str, tuple[Callable[[Sequence[str]], int], str]] = {
    "up": (_up, "run the embedded single-node stack: Temporal, the API server and workers"),
    "server": (_server, "serve the Image Builder API (rest-json)"),
    "worker": (_worker, "run Temporal workers: the control worker and executors"),
    "toe": (_toe, "validate and run component documents (awstoe-compatible)"),
    "parent-image": (lambda a: __import__("engine.parent_image_cli", fromlist=["_"]).main(a), "offline base images"),
    "keys": (lambda a: __import__("engine.api.auth.cli", fromlist=["_"]).main(a), "API access keys"),
    "follow": (lambda a: __import__("engine.follow_cli", fromlist=["_"]).main(a), "follow an image build live"),
    "instances": (
        lambda a: __import__("engine.instances_cli", fromlist=["_"]).main(a),
        "build and test instances on this host: list, connect, remove kept ones",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in VERBS:
        parser = argparse.ArgumentParser(prog="imagebuilder")
        parser.add_argument("verb", choices=sorted(VERBS), help="; ".join(f"{k}: {v[1]}" for k, v in VERBS.items()))
        parser.parse_args(args[:1] or ["--help"])
        return 2
    handler, _ = VERBS[args[0]]
    return handler(args[1:])


if __name__ == "__main__":
    sys.exit(main())
