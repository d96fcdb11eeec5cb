"""`nextbest replay FILE.jsonl`: feed a file through the same path as live traffic.

The file may be gzipped (`events.jsonl.gz`, as public data sets come), or `-` for standard
input (`convert.py | nextbest replay -`).

Each line (an event, or a JSON array of events; the whole file may also be one indented JSON
array) is validated like `POST /v1/events`; good events are appended to the partition
streams by the same script (so duplicates are dropped by event id), bad lines go to the
dead-letter stream with their line number and reason. If no engine is running from this data
folder (and REDIS_URL is unset), replay starts Redis and the flow itself and waits for the flow
to finish.
"""

from __future__ import annotations

import gzip
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from config import Settings, connect
from engine import sourcedrift, store
from engine.events import BadEvent, validate
from nextbest.engine import Engine, running_redis

BATCH = 500

BOM = b"\xef\xbb\xbf"  # UTF-8's byte-order mark, which some tools write first


def _flush(client: connect.Sync, sha: str, settings: Settings,
           good: list[dict[str, object]], bad: list[tuple[bytes, str]]) -> int:
    pipe = client.pipeline(transaction=False)
    for ev in good:
        keys, args = store.ingest_args(ev, settings.partitions, settings.dedup_ttl_s,
                                       settings.stream_maxlen, connect.is_cluster(settings.redis_url))
        connect.evalsha(pipe, sha, keys, args)
    for raw, reason in bad:
        pipe.xadd(store.DLQ, {"raw": raw[:65536], "reason": reason, "source": "replay",
                              "ts": str(time.time())},
                  maxlen=settings.deadletter_maxlen, approximate=True)
    if bad:
        pipe.hincrby(store.STATS, "deadlettered", len(bad))
        # per-source dead-letter counts for the flow's spike check (engine/sourcedrift.py)
        rec = sourcedrift.dead_letter_record([sourcedrift.channel_of_raw(raw) for raw, _ in bad])
        store.append_record(pipe, rec)
    res = pipe.execute()
    return sum(int(x) for x in res[: len(good)])


@contextmanager
def _lines(path: Path) -> Iterator[tuple[IO[bytes], IO[bytes] | None, int | None]]:
    """(lines, the raw file whose position is the progress, its size): gzip by its magic
    bytes; standard input for `-` (no size: the bar counts bytes)."""
    if str(path) == "-":
        yield sys.stdin.buffer, None, None
        return
    with path.open("rb") as raw:
        if raw.read(2) == b"\x1f\x8b":
            raw.seek(0)
            with gzip.open(raw) as fh:
                yield fh, raw, path.stat().st_size
            return
        raw.seek(0)
        yield raw, None, path.stat().st_size


class NotJsonLines(ValueError):
    """The file's first line is not JSON at all (a CSV's header, say): nothing was taken."""


def _take(line: bytes, lineno: int, latest: float | None, good: list[dict[str, object]],
          bad: list[tuple[bytes, str]], first: bool = False) -> None:
    """A line's events: one JSON object, or each object of a JSON array (a table exported as
    one, as `POST /v1/events` takes it), each dead-lettered alone if bad."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if first and not line.lstrip().startswith((b"{", b"[")):
            raise NotJsonLines(f"line {lineno} is not JSON ({line[:60]!r}): one JSON object per "
                               "line is needed; docs/data.md shows how tables map to "
                               "events") from None
        bad.append((line.rstrip(b"\n"), f"line {lineno}: not JSON: {exc}"))
        return
    many = isinstance(obj, list)
    for i, item in enumerate(obj if many else [obj]):
        try:
            good.append(validate(item, latest))
        except BadEvent as exc:
            where = f"line {lineno}, item {i}" if many else f"line {lineno}"
            bad.append((orjson.dumps(item) if many else line.rstrip(b"\n"), f"{where}: {exc}"))


def feed(settings: Settings, path: Path, console: Console) -> tuple[int, int, int]:
    """Validate and append every line; returns (accepted, duplicates, rejected)."""
    client = connect.client(str(settings.redis_url))
    script = client.script_load(store.INGEST_LUA)  # on every primary of a cluster
    good: list[dict[str, object]] = []
    bad: list[tuple[bytes, str]] = []
    started = False  # a line taken: a first line that is not JSON stops the replay instead
    columns = (TextColumn("[bold]replay"), BarColumn(), TransferSpeedColumn(),
               TextColumn("{task.fields[events]:,} events ({task.fields[rate]:,.0f}/s)"),
               TimeElapsedColumn(), TimeRemainingColumn())
    counts = [0, 0, 0]  # accepted, duplicates, rejected

    def flush() -> None:  # in slices: one line may hold a whole exported table as an array
        for at in range(0, max(len(good), len(bad)), BATCH):
            some = good[at:at + BATCH]
            added = _flush(client, script, settings, some, bad[at:at + BATCH])
            counts[0], counts[1] = counts[0] + added, counts[1] + len(some) - added
            counts[2] += len(bad[at:at + BATCH])
        good.clear()
        bad.clear()

    with Progress(*columns, console=console, transient=False) as progress, \
            _lines(path) as (fh, compressed, size):
        task = progress.add_task("replay", total=size, events=0, rate=0.0)
        began = time.monotonic()
        for lineno, line in enumerate(fh, 1):
            if compressed is None:
                progress.advance(task, len(line))
            elif lineno % 1000 == 0:
                progress.update(task, completed=compressed.tell())
            if lineno == 1:  # a file saved with a byte-order mark
                line = line.removeprefix(BOM)
                if line.strip() == b"[":  # one JSON array, indented (`to_json(indent=2)`)
                    rest = fh.read()
                    line += rest
                    progress.advance(task, len(rest) if compressed is None else 0)
            if not line.strip():
                continue
            _take(line, lineno, settings.latest_ts(), good, bad, first=not started)
            started = True
            if len(good) + len(bad) >= BATCH:
                flush()
                taken = sum(counts)
                progress.update(task, events=taken, rate=taken / max(1e-3, time.monotonic() - began))
        flush()
        taken = sum(counts)
        progress.update(task, events=taken, rate=taken / max(1e-3, time.monotonic() - began))
    return counts[0], counts[1], counts[2]


def pending(settings: Settings) -> int:
    client = connect.client(str(settings.redis_url))
    total = 0
    for p in range(settings.partitions):
        total += int(client.get(store.ingested(p)) or 0) - int(client.get(store.processed(p)) or 0)
    return max(0, total)


def wait_drained(settings: Settings, console: Console, timeout: float = 3600.0,
                 engine: Engine | None = None) -> bool:
    """Until the flow has processed everything; False, said why, when it stopped first (its
    process, when `engine` started it; else its heartbeat, gone 10 s) or `timeout` passed."""
    deadline = time.monotonic() + timeout
    client, quiet_since = connect.client(str(settings.redis_url)), None
    with console.status("waiting for the flow to process everything...") as status:
        while time.monotonic() < deadline:
            left = pending(settings)
            if left == 0:
                return True
            flow = engine.procs.get("flow") if engine else None
            if flow is not None and flow.poll() is not None:
                log = (settings.data_dir / "flow.log").read_text(errors="replace")[-1500:]
                console.print(f"[red]the flow exited with {flow.returncode}, {left:,} events "
                              f"pending:[/]\n{log}")
                return False
            if engine is None and not client.exists(store.HEARTBEAT):
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 10.0:
                    console.print(f"[red]the flow stopped (no heartbeat for 10 s): {left:,} "
                                  "events pending, processed once it runs again[/]")
                    return False
            else:
                quiet_since = None
            status.update(f"waiting for the flow: {left:,} events pending")
            time.sleep(0.2)
    console.print(f"[red]gave up waiting after {timeout:.0f} s[/]")
    return False


def replay(settings: Settings, file: str, wait: bool, console: Console) -> int:
    path = Path(file)
    if file != "-" and not path.exists():
        console.print(f"[red]no such file: {file}[/]")
        return 2
    engine, running = None, False
    if not settings.redis_url:
        settings.redis_url = running_redis(settings)
        running = bool(settings.redis_url)
    if not settings.redis_url:
        engine = Engine(settings, api=False).start()
    try:
        try:
            acc, dup, rej = feed(settings, path, console)
        except NotJsonLines as exc:
            console.print(f"[red]{file}: {exc}[/]")
            return 2
        where = "its own engine" if engine else "the running engine" if running else "REDIS_URL"
        console.print(f"accepted {acc:,}, duplicates {dup:,}, dead-lettered {rej:,} (into "
                      f"{where}: Redis {connect.redacted(str(settings.redis_url))}, data folder "
                      f"{settings.data_dir})")
        flow_alive = connect.client(str(settings.redis_url)).exists(store.HEARTBEAT)
        if (wait or engine) and not (engine or flow_alive):
            console.print("no flow is running on this Redis: the events wait in its streams "
                          "until one does (`nextbest up`)")
        elif wait or engine:
            if not wait_drained(settings, console, engine=engine):
                return 1
            console.print("the flow has processed everything")
        return 0
    except KeyboardInterrupt:
        console.print("stopped waiting: what was accepted is kept, and the flow processes it "
                      "when it runs")
        return 130
    finally:
        if engine:
            engine.stop()
