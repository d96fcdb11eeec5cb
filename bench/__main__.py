"""`./nb bench [NAME ...]`: run the benchmark suite (or the named benchmarks)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench


def available() -> list[str]:
    return sorted(m.name.removeprefix("bench_") for m in pkgutil.iter_modules(bench.__path__)
                  if m.name.startswith("bench_"))


def main(argv: list[str]) -> int:
    if argv and not argv[0].startswith("-") and len(argv) > 1 and argv[1].startswith("-"):
        importlib.import_module(f"bench.bench_{argv[0]}").main(argv[1:])  # one bench, its options
        return 0
    names = argv or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmarks {unknown}; available: {available()}")
        return 2
    for name in names:
        print(f"\n=== bench {name} ===", flush=True)
        start = time.monotonic()
        module = importlib.import_module(f"bench.bench_{name}")
        module.main([])
        print(f"(bench {name} took {time.monotonic() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
