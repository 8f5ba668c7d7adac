"""Moving bytes between the target and URLs: downloads, uploads and checksums, run on the target.

The target needs ``curl`` or ``wget`` (curl is preferred: it does file:// and PUT everywhere).
Transfers are retried with exponential backoff on transport errors and 5xx/429 answers, as
awstoe's WebDownload makes five attempts; a 4xx answer fails at once since a retry cannot help.
"""

from __future__ import annotations

import re
import time

from components.actions._target import Shell, q, tail
from components.actions.base import ActionFailed

ATTEMPTS = 5
BACKOFF_SECONDS = 1.0

_SUM_COMMANDS = {
    # GNU/busybox coreutils first, then the macOS tools.
    "md5": "md5sum -- {f} 2>/dev/null || md5 -q {f}",
    "sha1": "sha1sum -- {f} 2>/dev/null || shasum -a 1 {f}",
    "sha256": "sha256sum -- {f} 2>/dev/null || shasum -a 256 {f}",
    "sha512": "sha512sum -- {f} 2>/dev/null || shasum -a 512 {f}",
}


#: curl exit codes no retry can fix: unsupported protocol, malformed URL, unreadable file://.
_CURL_PERMANENT = frozenset({1, 3, 37})


class _Retryable(Exception):
    pass


def digest(sh: Shell, algorithm: str, path: str) -> str:
    """Hex digest of a file on the target (algorithm: MD5, SHA1, SHA256 or SHA512)."""
    command = _SUM_COMMANDS[algorithm.lower()].format(f=q(path))
    out = sh.check(f"{{ {command}; }} | cut -d ' ' -f 1", f"cannot checksum {path}").stdout
    return out.decode().strip().lower()


def _tool(sh: Shell) -> str:
    for name in ("curl", "wget"):
        if sh.has_binary(name):
            return name
    raise ActionFailed(f"{sh.action}: neither curl nor wget is installed on the target")


def _attempt(sh: Shell, script: str, what: str, tool: str) -> None:
    result = sh.sh(script)
    if result.exit_code == 0:
        # curl's -w prints the final HTTP status; awstoe accepts only 200 (0 is file://).
        code = result.stdout.decode().strip()[-3:] if tool == "curl" else "200"
        if code in ("200", "000", "") or not code.isdigit():
            return
        raise ActionFailed(f"{sh.action}: {what}: HTTP status {code}")
    err = tail(result.stderr, 3)
    if tool == "curl" and result.exit_code in _CURL_PERMANENT:
        raise ActionFailed(f"{sh.action}: {what}: {err}")
    status = re.search(r"(?:error|ERROR|returned error:)\D{0,3}(\d{3})", err)
    if status and status.group(1).startswith("4") and status.group(1) != "429":
        raise ActionFailed(f"{sh.action}: {what}: HTTP status {status.group(1)}: {err}")
    raise _Retryable(f"{sh.action}: {what}: {err or f'exit code {result.exit_code}'}")


def _with_retries(sh: Shell, script: str, what: str, tool: str) -> None:
    delay = BACKOFF_SECONDS
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _attempt(sh, script, what, tool)
            return
        except _Retryable as exc:
            if attempt == ATTEMPTS:
                raise ActionFailed(f"{exc} (after {ATTEMPTS} attempts)") from None
            sh.ctx.log.info(f"{exc}; retrying in {delay:g} s")
            time.sleep(delay)
            delay *= 2


def _headers(tool: str, headers: dict[str, str]) -> str:
    flag = "-H" if tool == "curl" else "--header"
    return "".join(f" {flag} {q(f'{k}: {v}')}" for k, v in headers.items())


def fetch(
    sh: Shell, url: str, path: str, *, insecure: bool = False, headers: dict[str, str] | None = None
) -> None:
    """Download url to path on the target (path is replaced), following redirects."""
    tool = _tool(sh)
    what = f"download of {_redact(url)} failed"
    if tool == "curl":
        script = f"curl -sSL --fail -o {q(path)} -w '%{{http_code}}'"
        script += " -k" if insecure else ""
    elif url.startswith("file://"):
        script = f"cp -f -- {q(url[len('file://'):])} {q(path)}"
        _with_retries(sh, script, what, "cp")
        return
    else:
        script = f"wget -nv -O {q(path)}"
        script += " --no-check-certificate" if insecure else ""
    script += _headers(tool, headers or {}) + f" {q(url)}"
    _with_retries(sh, script, what, tool)


def put(sh: Shell, path: str, url: str, *, headers: dict[str, str] | None = None) -> None:
    """Upload a target file with an HTTP PUT (a presigned S3 URL)."""
    tool = _tool(sh)
    what = f"upload of {path} failed"
    if tool == "curl":
        script = f"curl -sS --fail -o /dev/null -w '%{{http_code}}' -T {q(path)}"
    else:
        script = f"wget -nv -O /dev/null --method=PUT --body-file={q(path)}"
    script += _headers(tool, headers or {}) + f" {q(url)}"
    _with_retries(sh, script, what, tool)


def _redact(url: str) -> str:
    """Presigned URLs carry a signature in the query; keep it out of logs."""
    return url.split("?", 1)[0]
