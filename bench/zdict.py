"""Train the zstd dictionaries stored JSON is compressed with (engine/*.zdict, `store.compress`).

    .venv/bin/python -m bench.zdict [--kind profile|decision|event] [--customers 20000] [--rounds 400]

`profile` runs the real flow over simulated customers (as `./nb bench flow` does) and samples
their stored profile documents (a 4 KiB dictionary). `decision` runs the whole engine on them and
takes the decision records of decisions on every channel from the streams (an 8 KiB
dictionary). `event` samples the simulated events themselves, validated and encoded as the
ingest path appends them (a 4 KiB dictionary). Each trains on two thirds of its samples and
prints the held-out third's sizes and times against zlib and against another kind's dictionary.
A document carries its dictionary's id, so documents written with an older dictionary need that
dictionary to be read: keep it under a new name in `store.DICTIONARIES`.
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

SIZES = {"profile": 4096, "decision": 8192, "event": 4096}


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


def sample_decisions(customers: int, n: int = 3000) -> list[bytes]:
    import httpx

    from bench.bench_api import KEY, load_customers
    from nextbest.engine import ALL_ROLES, Engine
    from nextbest.redis_server import free_port

    tmp = Path(tempfile.mkdtemp(prefix="nb-zdict-"))
    settings = Settings(data_dir=tmp, api_port=free_port(), api_keys={KEY: ALL_ROLES},
                        flow_recovery=False)
    rng = random.Random(7)
    with Engine(settings) as engine:
        load_customers(settings, customers, Console(quiet=True))
        http = httpx.Client(base_url=engine.api_url, headers={"Authorization": f"Bearer {KEY}"})
        for i in range(n):
            channel = ("web", "agent", "email", "app")[i % 4]
            http.post("/v1/decisions", json={
                "customer_id": f"c{rng.randrange(customers):06d}", "channel": channel,
                "context": {"page": rng.choice(["home", "product", "cart", "search"])},
                "limit": rng.choice([1, 1, 3])}).raise_for_status()
        c = redis.Redis.from_url(str(settings.redis_url))
        out = []
        for p in range(settings.partitions):
            for _, fields in c.xrange(store.stream(p)):
                record = store.decode(fields[b"e"])
                if record.get("type") == "decision":
                    out.append(orjson.dumps(record))
    return out


def sample_events(customers: int, rounds: int, n: int = 30_000) -> list[bytes]:
    from engine.events import validate

    with tempfile.TemporaryDirectory(prefix="nb-zdict-") as tmp:  # ~80 MB of events
        path = Path(tmp) / "events.jsonl"
        write_events(path, customers, rounds)
        lines = path.read_bytes().splitlines()
    picked = random.Random(7).sample(lines, min(n, len(lines)))
    return [store.encode(validate(orjson.loads(line))) for line in picked]


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="bench.zdict")
    ap.add_argument("--kind", choices=sorted(SIZES), default="profile")
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=400)
    args = ap.parse_args(argv)
    docs = (sample_decisions(args.customers) if args.kind == "decision"
            else sample_events(args.customers, args.rounds) if args.kind == "event"
            else sample_documents(args.customers, args.rounds))
    train, test = docs[: len(docs) * 2 // 3], docs[len(docs) * 2 // 3:]
    other = "decision" if args.kind == "profile" else "profile"  # to compare with
    trained = zstandard.train_dictionary(SIZES[args.kind], train, level=1)
    out = Path(store.__file__).parent / store.DICTIONARIES[args.kind]
    out.write_bytes(trained.as_bytes())
    zc = zstandard.ZstdCompressor(level=1, dict_data=trained)
    for name, fn in (("zlib level 1", lambda b: zlib.compress(b, 1)),
                     (f"{other} dictionary", lambda b: store.compress(b, other)),
                     ("zstd + dictionary", zc.compress)):
        size = sum(len(fn(b)) for b in test) / len(test)
        us = timeit.timeit(lambda f=fn: [f(b) for b in test], number=3) / (3 * len(test)) * 1e6
        print(f"{name:18s} {size:6.1f} B per sample (JSON {sum(map(len, test)) / len(test):.0f} B), "
              f"{us:.1f} us to compress")
    print(f"wrote {out} (dictionary id {trained.dict_id()}, {len(trained.as_bytes())} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
