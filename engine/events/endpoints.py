"""Which webhook URLs receive which events: a JSON file mapping an SNS topic ARN (the
infrastructure configuration's ``snsTopicArn``) to one URL or a list of them; the key ``*``
receives every event (as a rule on EventBridge's default bus would)::

    {"arn:aws:sns:us-east-1:123456789012:builds": ["http://chat.example/hooks/builds"],
     "*": "http://audit.example/imagebuilder"}

The file is read again when it changes, so endpoints can be added without a restart.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("engine.events")

_TOPIC = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]*:[0-9]*:[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Endpoints:
    by_topic: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def urls(self, topic_arn: str) -> tuple[str, ...]:
        own = self.by_topic.get(topic_arn, ()) if topic_arn else ()
        return tuple(dict.fromkeys([*own, *self.by_topic.get("*", ())]))


def parse(text: str, where: str) -> Endpoints:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected an object mapping SNS topic ARNs (or '*') to URLs")
    out: dict[str, tuple[str, ...]] = {}
    for topic, urls in raw.items():
        if topic != "*" and not _TOPIC.match(topic):
            raise ValueError(f"{where}: {topic!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME) or '*'")
        listed = [urls] if isinstance(urls, str) else urls
        if not isinstance(listed, list) or not all(isinstance(u, str) for u in listed):
            raise ValueError(f"{where}: the endpoints of {topic} must be a URL or a list of URLs")
        for url in listed:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{where}: endpoint {url!r} of {topic} is not an http:// or https:// URL")
        out[topic] = tuple(listed)
    return Endpoints(out)


class EndpointsFile:
    """The endpoints of a file, re-read when it changes; a broken edit keeps the last good ones."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self._current = Endpoints()
        if path is not None:
            self._current = parse(path.read_text(), str(path))  # a bad file stops the worker at start
            self._stamp = self._stat()

    def _stat(self) -> tuple[float, int] | None:
        assert self.path is not None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime, st.st_size

    def current(self) -> Endpoints:
        if self.path is None:
            return self._current
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._current = parse(self.path.read_text(), str(self.path)) if stamp else Endpoints()
            except (OSError, ValueError) as exc:
                log.error("event endpoints not reloaded, the previous ones stay in use: %s", exc)
        return self._current
