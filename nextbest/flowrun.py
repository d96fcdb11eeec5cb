"""Run the engine's flow in this process: `python -m nextbest.flowrun [-w N] [-i ID -a ADDRS]`.

Wraps bytewax's own runner with recovery: snapshots in the data folder, tied to the Redis
instance they describe.
"""

from __future__ import annotations

import argparse
import fcntl
import gc
import uuid
from datetime import timedelta
from pathlib import Path

from bytewax._bytewax import cli_main
from bytewax.recovery import RecoveryConfig, init_db_dir

from config import connect, get_settings
from engine import store
from flows.main import build_flow

INSTANCE = f"{store.PREFIX}:instance"


def recovery_dir(url: str, data_dir: Path, partitions: int) -> Path:
    """Snapshots belong to one Redis instance: a flushed or new Redis starts afresh.

    The processes of one cluster share the folder; the first to arrive creates it (under a
    lock, so the others never open a half-made one)."""
    client = connect.client(url)
    client.set(INSTANCE, uuid.uuid4().hex, nx=True)
    instance = client.get(INSTANCE).decode()
    path = data_dir / "recovery" / instance
    path.parent.mkdir(parents=True, exist_ok=True)
    with (data_dir / "recovery" / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not any(path.glob("part-*")):
            path.mkdir(exist_ok=True)
            init_db_dir(path, partitions)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m nextbest.flowrun")
    ap.add_argument("-w", "--workers", type=int, default=None)
    ap.add_argument("-i", "--process-id", type=int, default=None)
    ap.add_argument("-a", "--addresses", default=None, help="host:port;host:port of all processes")
    ap.add_argument("--no-recovery", action="store_true")
    args = ap.parse_args(argv)
    settings = get_settings()
    url = str(settings.redis_url)
    recovery = None
    addresses = args.addresses.split(";") if args.addresses else None
    workers = args.workers or settings.flow_workers
    if settings.flow_recovery and not args.no_recovery:
        # one recovery partition per worker of the first cluster that runs on this Redis
        processes = len(addresses) if addresses else settings.flow_processes
        count = max(1, workers * max(1, processes))
        recovery = RecoveryConfig(str(recovery_dir(url, settings.data_dir, count)))
    flow = build_flow(settings)
    # The flow holds every customer's state: millions of long-lived objects that each full
    # collection would walk (~35% of the CPU at default thresholds, measured). Collect young
    # objects less often and leave what exists at start-up out of collections.
    gc.set_threshold(50_000, 20, 100)
    gc.freeze()
    cli_main(flow, workers_per_process=workers,
             process_id=args.process_id, addresses=addresses,
             epoch_interval=timedelta(seconds=2), recovery_config=recovery)


if __name__ == "__main__":
    main()
