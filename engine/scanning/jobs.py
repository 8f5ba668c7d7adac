"""When and where scans run.

An image whose ``imageScanningConfiguration.imageScanningEnabled`` is true gets a scan when it
becomes AVAILABLE: the SetImageState activity (through engine/events/hooks.py) sets its
``scanState`` to PENDING and inserts a ``scan-job`` row in the same transaction, so the request
survives any crash. The control worker's ScanService takes jobs one at a time, runs the
configured scanners on the image's inventory (on a thread: the build is not held up), replaces
the image's findings, sets ``scanState`` COMPLETED (or FAILED with a reason) and publishes an
"EC2 Image Builder CVE Detected" event when there are findings. A build that ends FAILED or
CANCELLED with scanning on gets ``scanState`` ABANDONED, as Image Builder reports it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.events import model
from engine.events.outbox import publish
from engine.scanning.database import Match
from engine.scanning.findings import finding
from engine.scanning.inventory import Inventory
from engine.scanning.scanners import Scanner, ScannerError
from engine.scanning.sources import DatabaseError
from engine.store import Record, Store, Tx
from engine.store.db import now_iso
from workers.blobstore import BlobStore

log = logging.getLogger("engine.scanning")

JOB_KIND = "scan-job"
FINDING_KIND = "image-scan-finding"


def scanning_enabled(body: dict[str, Any]) -> bool:
    return bool((body.get("imageScanningConfiguration") or {}).get("imageScanningEnabled"))


def image_state_written(tx: Tx, before: Record, after: dict[str, Any]) -> None:
    status = (after.get("state") or {}).get("status")
    previous = (before.body.get("state") or {}).get("status")
    if status == previous or not scanning_enabled(after):
        return
    if status == "AVAILABLE":
        request_scan(tx, before.with_body(after))
    elif status in ("FAILED", "CANCELLED"):
        reason = f"the image build ended {status} before a scan"
        tx.update(before.with_body({**after, "scanState": {"status": "ABANDONED", "reason": reason}}))


def request_scan(tx: Tx, image: Record) -> None:
    tx.update(image.with_body({**image.body, "scanState": {"status": "PENDING"}}))
    arn = f"scan-job/{image.arn}"
    body = {"imageArn": image.arn, "requested": now_iso(), "attempts": 0, "notBefore": 0.0}
    if tx.get(arn, JOB_KIND) is None:
        tx.insert(Record(arn=arn, kind=JOB_KIND, account=image.account, name=_digest(image.arn), body=body))
    else:
        tx.update(Record(arn=arn, kind=JOB_KIND, account=image.account, name=_digest(image.arn), body=body))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class ScanPolicy:
    poll: float = 2.0
    attempts: int = 3
    retry: float = 30.0
    lease: float = 1800.0


class ScanService:
    def __init__(
        self,
        store: Store,
        scanners: Callable[[], list[Scanner]],
        blobs: BlobStore | None = None,
        policy: ScanPolicy | None = None,
    ) -> None:
        self.store = store
        self.scanners = scanners
        self.blobs = blobs
        self.policy = policy or ScanPolicy()

    async def run(self) -> None:
        while True:
            try:
                while await asyncio.to_thread(self.run_once):
                    pass
            except Exception:
                log.exception("scan pass failed; retrying")
            await asyncio.sleep(self.policy.poll)

    def _claim(self) -> Record | None:
        now = time.time()
        with self.store.transaction(write=True) as tx:
            for job in tx.find(JOB_KIND):
                if float(job.body.get("notBefore", 0)) > now:
                    continue
                claimed = job.with_body({**job.body, "notBefore": now + self.policy.lease})
                tx.update(claimed)
                image = tx.get(str(job.body["imageArn"]), "image")
                if image is None:
                    tx.delete(job.arn)  # deleted meanwhile: nothing to scan
                    continue
                tx.update(image.with_body({**image.body, "scanState": {"status": "SCANNING"}}))
                return claimed
        return None

    def run_once(self) -> bool:
        """Scan one due image; False when none was due."""
        job = self._claim()
        if job is None:
            return False
        image_arn = str(job.body["imageArn"])
        with self.store.transaction() as tx:
            image = tx.get(image_arn, "image")
            ref = packages_ref(tx, image_arn)
        if image is None:
            return True
        inventory = self._inventory(image.body, ref)
        if not inventory.packages:
            self._failed(
                job,
                image_arn,
                "the image has no package inventory to scan: turn enhancedImageMetadataEnabled on and keep "
                "the CollectImageMetadata step (InventoryCollection) in the build workflow",
                final=True,
            )
            return True
        try:
            scanners = self.scanners()
            if not scanners:
                raise ScannerError(
                    "no scanner is configured: set vulnerability_database, or install trivy or grype on the control "
                    "worker's host"
                )
            matches = _merge([m for s in scanners for m in s.scan(inventory)])
        except (ScannerError, DatabaseError, OSError) as exc:
            self._failed(job, image_arn, str(exc))
            return True
        self._completed(job, image, matches, [s.name for s in scanners])
        return True

    def _inventory(self, body: dict[str, Any], ref: str) -> Inventory:
        """The collector's own file when it can be read (it has the OS release and each binary's
        source package), else what the image record keeps (``_packages``, ``osVersion``)."""
        if ref and self.blobs is not None:
            try:
                data = json.loads(self.blobs.read_text(ref))
                return Inventory.from_parts(data.get("packages") or [], data.get("os") or {}, data.get("osVersion", ""))
            except (OSError, ValueError, AttributeError) as exc:
                log.warning("package inventory %s unreadable, using the image record's: %s", ref, exc)
        return Inventory.from_image(body)

    def _failed(self, job: Record, image_arn: str, reason: str, final: bool = False) -> None:
        attempts = int(job.body.get("attempts", 0)) + 1
        log.warning("scan of %s failed (attempt %d): %s", image_arn, attempts, reason)
        with self.store.transaction(write=True) as tx:
            image = tx.get(image_arn, "image")
            if final or attempts >= self.policy.attempts:
                tx.delete(job.arn)
                if image is not None:
                    state = {"status": "FAILED", "reason": reason[:1024]}
                    tx.update(image.with_body({**image.body, "scanState": state}))
            else:
                retry = {**job.body, "attempts": attempts, "notBefore": time.time() + self.policy.retry}
                tx.update(job.with_body(retry))
                if image is not None:
                    tx.update(image.with_body({**image.body, "scanState": {"status": "PENDING", "reason": reason}}))

    def _completed(self, job: Record, image: Record, matches: list[Match], scanner_names: list[str]) -> None:
        now = now_iso()
        pipeline = image.body.get("sourcePipelineArn")
        counts = {"all": len(matches), "critical": 0, "high": 0, "medium": 0}
        for m in matches:
            if m.severity.lower() in counts:
                counts[m.severity.lower()] += 1
        with self.store.transaction(write=True) as tx:
            current = tx.get(image.arn, "image")
            if current is None:
                tx.delete(job.arn)
                return
            old = {r.arn: r for r in tx.find(FINDING_KIND, parent=image.arn)}
            for m in matches:
                body = finding(m, current.account, image.arn, pipeline, now)
                arn = f"image-scan-finding/{_digest(image.arn + ' ' + m.advisory.id)}"
                previous = old.pop(arn, None)
                if previous is None:
                    tx.insert(Record(arn=arn, kind=FINDING_KIND, account=current.account, name=arn, parent=image.arn,
                                     body=body))  # fmt: skip
                else:
                    body["firstObservedAt"] = previous.body.get("firstObservedAt", now)
                    tx.update(previous.with_body(body))
            for gone in old:
                tx.delete(gone)
            reason = f"{len(matches)} findings from {', '.join(scanner_names)}"
            tx.update(current.with_body({**current.body, "scanState": {"status": "COMPLETED", "reason": reason}}))
            tx.delete(job.arn)
            if matches:
                topic = str((current.body.get("infrastructureConfiguration") or {}).get("snsTopicArn") or "")
                publish(tx, model.cve_detected(current.account, image.arn, pipeline, counts), topic)
        log.info("scanned %s: %s", image.arn, reason)


def packages_ref(tx: Tx, image_arn: str) -> str:
    """The blob of the image's latest completed CollectImageMetadata step ("" if none ran)."""
    found: list[tuple[str, str]] = []
    for wf in tx.find("workflow-execution", parent=image_arn):
        for step in tx.find("workflow-step-execution", parent=wf.arn):
            if step.body.get("action") == "CollectImageMetadata" and step.body.get("status") == "COMPLETED":
                try:
                    ref = json.loads(step.body.get("outputs") or "{}").get("packagesRef")
                except (ValueError, AttributeError):
                    continue
                if ref:
                    found.append((str(step.body.get("endTime") or ""), str(ref)))
    return max(found)[1] if found else ""


def _merge(matches: list[Match]) -> list[Match]:
    """One finding per vulnerability id even when several scanners report it: the first
    scanner's description, every package any of them found."""
    by_id: dict[str, Match] = {}
    for m in matches:
        seen = by_id.get(m.advisory.id)
        if seen is None:
            by_id[m.advisory.id] = m
            continue
        names = {p.name for p in seen.packages}
        extra = tuple(p for p in m.packages if p.name not in names)
        by_id[m.advisory.id] = Match(seen.advisory, seen.severity, seen.packages + extra)
    return list(by_id.values())
