"""`imagebuilder instances`: the build and test instances this host holds, and removing them.

A failed build whose infrastructure configuration says terminateInstanceOnFailure: false keeps
its instance for debugging; this is how to find it, reach it and, when done, remove it:

    imagebuilder instances                      # list: id, purpose, image, state, how to connect
    imagebuilder instances remove i-0123...     # one instance: domain, overlay, seed and key
    imagebuilder instances remove --image ARN   # every instance of one build
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imagebuilder instances", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("list", help="list the instances on this host (the default)")
    remove = sub.add_parser("remove", help="remove instances (domain, overlay, seed, key)")
    remove.add_argument("ids", nargs="*", help="instance ids (i-...)")
    remove.add_argument("--image", help="every instance of this image build version ARN")
    args = parser.parse_args(argv)

    from workers.executors.libvirt_domain import connection, instance_domains, is_running
    from workers.executors.libvirt_workspace import Workspaces, connect_hint

    spaces = Workspaces()
    with connection() as conn:
        domains = instance_domains(conn)
        states = {i: ("running" if is_running(conn, f"ib-{i}") else "shut off") for i in domains}
    ids = sorted(set(spaces.ids()) | set(domains))
    if args.command in (None, "list"):
        if not ids:
            print("no instances on this host")
        for iid in ids:
            state = spaces.load(iid)
            arn = state.image_arn if state else domains.get(iid, "?")
            purpose = state.purpose if state else "?"
            print(f"{iid}  {purpose:5}  {states.get(iid, 'no domain'):9}  {arn}")
            if state is not None:
                print(f"    {connect_hint(state.key_path, state.ssh_port, state.domain)}")
        return 0
    chosen = list(args.ids)
    if args.image:
        for iid in ids:
            state = spaces.load(iid)
            if (state.image_arn if state else domains.get(iid)) == args.image:
                chosen.append(iid)
    if not chosen:
        parser.error("name instance ids, or --image ARN")
    from engine import settings
    from workers.blobstore import BlobStore
    from workers.executors.base import ExecutorSettings
    from workers.executors.libvirt import LibvirtExecutor

    config = settings.load()
    blobs = BlobStore(config.data_dir / "store")
    executor = LibvirtExecutor(ExecutorSettings(host_id="cli", state_dir=config.data_dir / "executor", blobs=blobs))
    status = 0
    for iid in dict.fromkeys(chosen):
        removed: list[str] = []
        with contextlib.suppress(ValueError):
            removed = executor.remove_instance(iid)
        print(f"{iid}: removed {', '.join(removed)}" if removed else f"{iid}: nothing to remove")
        status |= 0 if removed else 1
    return status
