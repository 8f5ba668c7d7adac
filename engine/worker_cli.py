"""`imagebuilder worker`: run Temporal workers (the control worker and/or executors)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client

from engine import settings
from engine.observability.process import client_interceptors, observe_workers, setup_process


async def run_workers(config: settings.Config, control: bool, executors: list[str], max_concurrent: int) -> None:
    from workers.blobstore import BlobStoreError, open_blob_store
    from workers.worker import executor_workers

    try:
        client = await Client.connect(
            config.temporal_address, namespace=config.temporal_namespace, interceptors=client_interceptors()
        )
    except RuntimeError as exc:  # the SDK's connect error carries the transport's reason
        raise SystemExit(
            f"imagebuilder worker: cannot reach Temporal at {config.temporal_address} "
            f"(set --temporal-address or IMAGEBUILDER_TEMPORAL_ADDRESS): {exc}"
        ) from None
    try:
        blobs = open_blob_store(config.data_dir / "store", config.store_url, config.s3_endpoint_url)
        blobs.check()
    except (BlobStoreError, ValueError) as exc:
        raise SystemExit(f"imagebuilder worker: {exc} (set --store-url / --s3-endpoint-url)") from None
    workers = []
    if control:
        from engine.builds.control import control_worker
        from engine.store import Store

        store = Store(config.db_url)
        store.migrate()
        catchup = timedelta(minutes=config.pipeline_catchup_minutes)
        from engine.scanning.scanners import ScannerError

        try:
            worker = control_worker(
                client, store, blobs, config.region, config.account_id, config.registry, catchup, config=config
            )
        except ScannerError as exc:  # scanners / vulnerability_database name something unusable
            raise SystemExit(f"imagebuilder worker: {exc}") from None
        workers.append(worker)
    if executors:
        workers += executor_workers(
            client,
            executors,
            config.data_dir / "executor",
            blobs,
            config.registry,
            max_concurrent=max_concurrent,
            export_dir=Path(config.export_dir) if config.export_dir else config.data_dir / "exports",
            s3_endpoint_url=config.s3_endpoint_url,
            import_dir=Path(config.import_dir) if config.import_dir else config.data_dir / "imports",
            capacity_limits=(config.capacity_vcpus, config.capacity_memory_mib, config.capacity_disk_gib),
        )
    if not workers:
        raise SystemExit("nothing to run: give --control and/or --executors")
    await observe_workers(client, config, workers, blobs, control)
    logging.info("workers running: control=%s executors=%s", control, executors)
    await asyncio.gather(*(w.run() for w in workers))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imagebuilder worker", description=__doc__)
    parser.add_argument("--control", action="store_true", help="run the build workflows (needs the database)")
    parser.add_argument("--executors", default="", help="comma-separated executor kinds: docker,libvirt")
    settings.add_arguments(parser)
    args = parser.parse_args(argv)
    config = settings.load(args)
    setup_process(config, "imagebuilder-worker")
    kinds = [k for k in args.executors.split(",") if k]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_workers(config, args.control, kinds, config.max_concurrent))
    return 0
