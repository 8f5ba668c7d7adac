"""``imagebuilder toe``: awstoe's ``validate`` and ``run`` verbs (spec §11).

Exit codes follow awstoe: 0 when the documents are valid / the run succeeded (including
SuccessWithIgnoredFailure), 1 for anything else (invalid documents, failed run, bad flags).
``run`` prints awstoe's result object as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from components.errors import DocumentInvalid, ToeError
from components.targets.base import Target, TargetError

EXIT_OK = 0
EXIT_FAILED = 1


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit 2; awstoe exits 1
        raise _UsageError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="imagebuilder toe", description="Validate and run AWSTOE component documents.")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    validate = verbs.add_parser("validate", help="check documents' syntax, schema and references")
    validate.add_argument("-d", "--documents", required=True, help="comma-separated document paths")
    validate.add_argument("-t", "--trace", action="store_true", help="print every error, not only the count")
    run = verbs.add_parser("run", help="run documents' phases on a target")
    run.add_argument("-c", "--config", help="JSON run configuration (awstoe's --config format)")
    run.add_argument("-d", "--documents", help="comma-separated document paths")
    run.add_argument("-p", "--phases", help="comma-separated phases to run (document order still applies)")
    run.add_argument("--parameters", help="K=V,K2=V2 for every document (names a document lacks are ignored)")
    run.add_argument("-i", "--execution-id", help="default: a new UUID; reuse one to resume an interrupted run")
    run.add_argument("-l", "--log-directory", help="where the TOE_<time>_<id> run folder goes (default: cwd)")
    run.add_argument("-s", "--state-directory", help="accepted for awstoe compatibility; state lives in the run folder")
    run.add_argument("--target", default="local", help="local | docker:CONTAINER | ssh:user@host:port")
    run.add_argument("-t", "--trace", action="store_true", help="also print console.log when the run ends")
    return parser


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _parameters(text: str | None) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in _split(text):
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise _UsageError(f"--parameters: {pair!r} is not NAME=VALUE")
        if value == "":
            raise _UsageError(f"--parameters: parameter '{name}' has an empty value")
        values[name] = value
    return values


def _validate(args: argparse.Namespace) -> int:
    from components.document import load_document

    status = EXIT_OK
    for path in _split(args.documents):
        try:
            load_document(path)
            print(f"{path}: valid")
        except DocumentInvalid as exc:
            status = EXIT_FAILED
            shown = exc.errors if args.trace or len(exc.errors) <= 20 else exc.errors[:20]
            for error in shown:
                print(error, file=sys.stderr)
            if len(shown) < len(exc.errors):
                print(f"... and {len(exc.errors) - len(shown)} more (use --trace)", file=sys.stderr)
    return status


def open_target(spec: str) -> Target:
    if spec == "local":
        from components.targets.local import LocalTarget

        return LocalTarget()
    import importlib

    # Written in parallel by the targets engineer; looked up at run time so this works either way.
    open_any = getattr(importlib.import_module("components.targets"), "open_target", None)
    if open_any is None:
        raise ToeError(f"target {spec!r}: only 'local' is available (components.targets.open_target is missing)")
    try:
        target: Target = open_any(spec)
    except (ValueError, TargetError) as exc:  # a malformed spec, or a target that cannot be reached
        raise ToeError(f"target {spec!r}: {exc}") from None
    return target


def _run_request(args: argparse.Namespace) -> Any:
    from components.runner import DocumentInput, RunRequest

    config: dict[str, Any] = {}
    if args.config:
        if args.documents:
            raise _UsageError("give documents with --documents or in --config, not both")
        try:
            config = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise _UsageError(f"--config {args.config}: {exc}") from None
        if args.parameters and (config.get("parameters") or any(d.get("parameters") for d in config["documents"])):
            raise _UsageError("give parameters with --parameters or in --config, not both")
    elif not args.documents:
        raise _UsageError("one of --documents and --config is required")

    def pairs(items: Any) -> dict[str, str]:
        return {str(p["name"]): str(p["value"]) for p in items or []}

    if config:
        documents = tuple(DocumentInput(Path(d["path"]), pairs(d.get("parameters"))) for d in config["documents"])
    else:
        documents = tuple(DocumentInput(Path(p)) for p in _split(args.documents))
    phases = _split(args.phases or config.get("phases")) or None
    return RunRequest(
        documents=documents,
        log_directory=Path(args.log_directory or config.get("logDirectory") or ".").resolve(),
        phases=tuple(phases) if phases else None,
        parameters=_parameters(args.parameters) if args.parameters else pairs(config.get("parameters")),
        execution_id=args.execution_id or config.get("executionId"),
    )


def _run(args: argparse.Namespace) -> int:
    from components.runner import run

    request = _run_request(args)
    try:
        target = open_target(args.target)
    except ToeError as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    try:
        with target:
            summary = run(request, target)
    except DocumentInvalid as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return EXIT_FAILED
    except ToeError as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    if args.trace:
        sys.stderr.write((summary.log_dir / "console.log").read_text(errors="replace"))
    print(json.dumps(summary.outputs(), indent=2))
    return EXIT_OK if summary.status in ("success", "SuccessWithIgnoredFailure") else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        return _validate(args) if args.verb == "validate" else _run(args)
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
