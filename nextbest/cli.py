"""The `nextbest` command: demo, up, replay."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Iterator

from rich.console import Console

from config import Settings
from config.connect import redacted

console = Console()


def cmd_demo(args: argparse.Namespace) -> int:
    from nextbest.demo import run

    settings = Settings()
    if args.port:
        settings.api_port = args.port
    if settings.redis_url:  # a simulated population has no place in the operator's Redis
        console.print(f"REDIS_URL ({redacted(str(settings.redis_url))}) is left alone: the demo "
                      "runs on its own embedded Redis")
        settings.redis_url = None
    stats = run(settings, args.duration, args.customers, args.seed, console)
    acc, rnd, orc = stats.rates(stats.served)
    n = max(1, len(stats.value))
    ev, rv, ov = (sum(v[i] for v in stats.value) / n for i in range(3))
    console.print(f"acceptance {acc:.1%} vs random {rnd:.1%} (oracle {orc:.1%}); expected value per "
                  f"decision {ev:.2f} vs random {rv:.2f} (oracle {ov:.2f}) over the last "
                  f"{len(stats.served)} decisions; {stats.alerts} alerts raised")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from nextbest.engine import Engine

    settings = Settings()
    if args.port:
        settings.api_port = args.port
    stopping: list[int] = []

    def terminate(*_: object) -> None:
        stopping.append(1)
        if len(stopping) == 1:  # a second one lets the stop run to its end
            # may be swallowed: raised inside an at-fork callback of `logging` while a child
            # starts, it is only printed; the start then completes and the loop sees `stopping`.
            # (Not SIG_IGN: the children started after it would inherit it and ignore SIGTERM.)
            raise KeyboardInterrupt

    # from the start: a SIGTERM while the engine starts (a supervisor's stop) stops what started
    signal.signal(signal.SIGTERM, terminate)
    try:
        with Engine(settings, quiet=False) as engine:
            console.print(f"[bold]nextbest[/] is up: {engine.api_url}/docs  console: "
                          f"{engine.api_url}/console  (Redis {redacted(str(settings.redis_url))}, "
                          f"data folder {settings.data_dir})")
            if engine.admin_key:
                console.print(f"No NEXTBEST_API_KEYS set: generated an all-roles key for this "
                              f"run: [bold]{engine.admin_key}[/]")
            while not stopping:
                for name, proc in engine.procs.items():
                    if proc.poll() is not None:
                        console.print(f"[red]{name} exited with {proc.returncode}[/]")
                        return 1
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from nextbest.replay import replay

    return replay(Settings(), args.file, args.wait, console)


@contextlib.contextmanager
def _redis(settings: Settings) -> Iterator[bool]:
    """A Redis holding this folder's data: the running engine's, `REDIS_URL`, or the embedded
    one started for the command (no flow, no API) and stopped after it. False: none to be had."""
    from nextbest.engine import Engine, running_redis

    settings.redis_url = settings.redis_url or running_redis(settings)
    if settings.redis_url:
        yield True
        return
    if not (settings.data_dir / "redis").exists():
        console.print(f"[red]no engine data in {settings.data_dir} and REDIS_URL is not set[/]")
        yield False
        return
    engine = Engine(settings, api=False, flow=False).start()
    try:
        yield True
    finally:
        engine.stop()


def cmd_deadletter(args: argparse.Namespace) -> int:
    from nextbest import deadletter

    settings = Settings()
    with _redis(settings) as ok:
        if not ok:
            return 2
        if args.action == "list":
            return deadletter.show(settings, args.limit, args.contains, console)
        deadletter.replay(settings, args.contains, console)
        return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from nextbest import evaluate

    settings = Settings()
    with _redis(settings) as ok:
        if not ok:
            return 2
        try:
            levers = {k: float(v) for k, v in (x.split("=", 1) for x in args.lever)}
        except ValueError:
            console.print(f"[red]--lever takes offer=weight, e.g. gold_card=1.5: {args.lever}[/]")
            return 2
        if not 0.0 <= args.epsilon <= 1.0:
            console.print(f"[red]--epsilon is a share, 0 to 1: {args.epsilon}[/]")
            return 2
        evaluate.run(settings, levers, set(args.drop), args.epsilon, console)
        return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="nextbest", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    demo = sub.add_parser("demo", help="run everything against a simulated population")
    demo.add_argument("--duration", type=float, default=None, help="seconds (default: until Ctrl-C)")
    demo.add_argument("--customers", type=int, default=3000, help="simulated customers (default 3000)")
    demo.add_argument("--seed", type=int, default=7, help="the simulation's random seed")
    demo.add_argument("--port", type=int, default=None, help="the API's port (NEXTBEST_API_PORT)")
    demo.set_defaults(fn=cmd_demo)
    up = sub.add_parser("up", help="run the engine for real traffic until interrupted")
    up.add_argument("--port", type=int, default=None, help="the API's port (NEXTBEST_API_PORT)")
    up.set_defaults(fn=cmd_up)
    rp = sub.add_parser("replay", help="feed a JSON Lines file of events through the engine")
    rp.add_argument("file", help="JSON Lines, gzipped or not; - for standard input")
    rp.add_argument("--no-wait", dest="wait", action="store_false",
                    help="return once ingested, without waiting for the flow")
    rp.set_defaults(fn=cmd_replay)
    dl = sub.add_parser("deadletter", help="inspect the dead-letter stream, or replay it after a fix")
    dl.add_argument("action", choices=["list", "replay"])
    dl.add_argument("--limit", type=int, default=50, help="entries listed (default 50)")
    dl.add_argument("--contains", default=None, help="only entries whose reason or raw text has this")
    dl.set_defaults(fn=cmd_deadletter)
    ev = sub.add_parser("evaluate", help="off-policy estimates of another policy from the decision log")
    ev.add_argument("--lever", action="append", default=[], help="offer=weight (a catalog change)")
    ev.add_argument("--drop", action="append", default=[], help="an offer to remove")
    ev.add_argument("--epsilon", type=float, default=0.05,
                    help="the evaluated policy's exploration share, 0 to 1 (default 0.05)")
    ev.set_defaults(fn=cmd_evaluate)
    args = ap.parse_args(argv)
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from nextbest.engine import FolderInUse

    try:
        return int(args.fn(args))
    except FolderInUse as exc:
        console.print(f"[red]{exc}[/]")
        return 1
    except ValidationError as exc:  # a setting from the environment: named, its value not shown
        for err in exc.errors():
            name = "NEXTBEST_" + str(err["loc"][0]).upper() if err["loc"] else "a setting"
            console.print(f"[red]{name.replace('NEXTBEST_REDIS_URL', 'REDIS_URL')}: "
                          f"{err['msg']}[/]")
        return 2
    except SettingsError as exc:  # a JSON setting that is not JSON
        import re

        field = re.search(r'field "(\w+)"', str(exc))
        name = "NEXTBEST_" + field.group(1).upper() if field else "a setting"
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        console.print(f"[red]{name}: not valid JSON{cause}[/]")
        return 2


if __name__ == "__main__":
    sys.exit(main())
