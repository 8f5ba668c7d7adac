"""What a handler gets besides its input: who is calling, where, and the open transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.settings import Config
from engine.store import Tx

if TYPE_CHECKING:
    from engine.api.services import Services


@dataclass
class RequestContext:
    operation: str
    account: str
    region: str
    tx: Tx
    config: Config
    services: Services
    request_id: str
    #: The access key id the request was signed with (verified), and the principal it maps to.
    access_key: str | None = None
    principal: str | None = None
    dry_run: bool = False
    #: Work to do only after the transaction commits (e.g. starting a Temporal workflow).
    after_commit: list[Any] = field(default_factory=list)

    def arn(self, kind_path: str) -> str:
        """An ARN in the caller's account and region: arn:aws:imagebuilder:R:A:<kind_path>."""
        return f"arn:aws:imagebuilder:{self.region}:{self.account}:{kind_path}"
