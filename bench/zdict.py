"""Train the zstd dictionary profile documents are compressed with (engine/profile.zdict).

    .venv/bin/python -m bench.zdict [--customers 20000] [--rounds 400]

Runs the real flow over simulated customers (as `./nb bench flow` does), samples their stored
profile documents, trains a 4 KiB dictionary on two thirds of them and prints the held-out third's
sizes and times against zlib. A document carries its dictionary's id, so documents written with
an older dictionary need that dictionary to be read: keep it under its id (engine/store.py).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import timeit
import zlib
from pathlib import Path

import orjson
import redis
import zstandard
from rich.console import Console

from bench.bench_flow import timed_run
from bench.data import write_events
from config import Settings
from engine import store
from nextbest.redis_server import RedisServer
from nextbest.replay import feed

OUT = Path(store.__file__).parent / "profile.zdict"


def sample_documents(customers: int, rounds: int, n: int = 3000) -> list[bytes]:
    tmp = Path(tempfile.mkdtemp(prefix="nb-zdict-"))
    events = tmp / "events.jsonl"
    write_events(events, customers, rounds)
    with RedisServer(tmp / "redis") as server:
        s = Settings(redis_url=server.url, data_dir=tmp / "d", partitions=4, model_secret="x",
                     api_keys={}, flow_recovery=False)
        feed(s, events, Console(quiet=True))
        timed_run(s, [[]])
        c = redis.Redis.from_url(server.url)
        ids = random.Random(7).sample(range(customers), min(n, customers))
        docs = [store.decode(c.get(store.customer(f"c{i:06d}"))) for i in ids]
    return [orjson.dumps(d) for d in docs if d is not None]


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="bench.zdict")
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=400)
    args = ap.parse_args(argv)
    docs = sample_documents(args.customers, args.rounds)
    train, test = docs[: len(docs) * 2 // 3], docs[len(docs) * 2 // 3:]
    trained = zstandard.train_dictionary(4096, train, level=1)
    OUT.write_bytes(trained.as_bytes())
    zc = zstandard.ZstdCompressor(level=1, dict_data=trained)
    for name, fn in (("zlib level 1", lambda b: zlib.compress(b, 1)), ("zstd + dictionary", zc.compress)):
        size = sum(len(fn(b)) for b in test) / len(test)
        us = timeit.timeit(lambda f=fn: [f(b) for b in test], number=3) / (3 * len(test)) * 1e6
        print(f"{name:18s} {size:6.1f} B per document (JSON {sum(map(len, test)) / len(test):.0f} B), "
              f"{us:.1f} us to compress")
    print(f"wrote {OUT} (dictionary id {trained.dict_id()}, {len(trained.as_bytes())} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
