"""The soak benchmark's verdict (`./nb bench soak`): the sampled rows judged against stated
criteria, so the same rules decide every run and are printed with the result."""

from __future__ import annotations

from typing import Any

from scipy.stats import linregress

CRITERIA = {
    "rss_slope_mb_per_min": 2.0,  # after warm-up, per process tree (API, flow)
    "p99_drift_ratio": 1.5,  # last third's median p99 over the first third's, plus 1 ms slack
    "p99_drift_slack_ms": 1.0,
    "errors": 0,  # non-2xx, connection errors, fallback decisions, failed feedback
    "drain_s": 60.0,  # the flow's pending count reaches 0 this soon after the load stops
    "redis_bytes_per_record": 2048,  # Redis growth per appended event/decision (stream + dedup key)
}


def verdict(rows: list[dict[str, Any]], drain_s: float | None, warmup: float) -> dict[str, Any]:
    """Judge the rows by CRITERIA: bounded memory, no latency drift, no errors, pending drained."""
    steady = [row for row in rows if row["elapsed_s"] > warmup]
    out: dict[str, Any] = {"criteria": CRITERIA, "warmup_s": warmup,
                           "samples_after_warmup": len(steady)}
    for proc in ("api", "flow"):
        slope = _slope(steady, f"rss_{proc}_mb")
        out[f"rss_{proc}_slope_mb_per_min"] = slope
        out[f"rss_{proc}_bounded"] = slope is not None and slope < CRITERIA["rss_slope_mb_per_min"]
        # not judged, shown: a state still filling toward its bounds slows down, a leak does not
        out[f"rss_{proc}_second_half_slope_mb_per_min"] = _slope(rows[len(rows) // 2:],
                                                                  f"rss_{proc}_mb")
    out["redis_slope_mb_per_min"] = _slope(steady, "redis_used_mb")
    grown = (rows[-1]["redis_used_mb"] - rows[0]["redis_used_mb"]) * 2**20
    out["redis_bytes_per_record"] = round(grown / max(1, sum(row["records"] for row in rows[1:])))
    out["redis_explained"] = out["redis_bytes_per_record"] <= CRITERIA["redis_bytes_per_record"]
    third = max(1, len(rows) // 3)
    first, last = (sorted(row["p99_ms"] for row in part) for part in (rows[:third], rows[-third:]))
    out["p99_first_third_ms"], out["p99_last_third_ms"] = first[len(first) // 2], last[len(last) // 2]
    limit = out["p99_first_third_ms"] * CRITERIA["p99_drift_ratio"] + CRITERIA["p99_drift_slack_ms"]
    out["latency_stable"] = out["p99_last_third_ms"] <= limit
    out["errors_total"] = sum(row["errors_total"] for row in rows)
    out["pending_max"] = max(row["pending"] for row in rows)
    out["drain_s"] = drain_s
    out["drained"] = drain_s is not None
    out["pass"] = all(out[k] for k in ("rss_api_bounded", "rss_flow_bounded", "redis_explained",
                                       "latency_stable", "drained")) and out["errors_total"] == 0
    return out


def _slope(rows: list[dict[str, Any]], key: str) -> float | None:
    """Least-squares growth of `key` per minute, None with fewer than 3 samples."""
    if len(rows) < 3:
        return None
    fit = linregress([row["elapsed_s"] / 60 for row in rows], [row[key] for row in rows])
    return round(float(fit.slope), 3)


def print_verdict(v: dict[str, Any]) -> None:
    c = CRITERIA

    def mark(ok: bool) -> str:
        return "ok" if ok else "FAIL"

    print(f"\nverdict (memory slopes over the {v['samples_after_warmup']} samples after the first "
          f"{v['warmup_s']:.0f} s):")
    for proc in ("api", "flow"):
        print(f"  {proc} RSS slope {v[f'rss_{proc}_slope_mb_per_min']} MB/min "
              f"(bounded if < {c['rss_slope_mb_per_min']} MB/min): "
              f"{mark(v[f'rss_{proc}_bounded'])}; over the second half "
              f"{v.get(f'rss_{proc}_second_half_slope_mb_per_min')} MB/min (shown, not judged)")
    print(f"  Redis slope {v['redis_slope_mb_per_min']} MB/min, {v['redis_bytes_per_record']} bytes "
          f"per appended record (streams and dedup keys grow by design up to stream_maxlen and "
          f"dedup_ttl_s; explained if <= {c['redis_bytes_per_record']}): "
          f"{mark(v['redis_explained'])}")
    print(f"  decision p99 first third {v['p99_first_third_ms']} ms, last third "
          f"{v['p99_last_third_ms']} ms (stable if last <= {c['p99_drift_ratio']} x first + "
          f"{c['p99_drift_slack_ms']} ms): {mark(v['latency_stable'])}")
    print(f"  errors {v['errors_total']} (non-2xx, connection errors, fallback decisions, failed "
          f"feedback; must be {c['errors']}): {mark(v['errors_total'] == 0)}")
    print(f"  pending max {v['pending_max']:,}, drained {v['drain_s']} s after the load stopped "
          f"(must drain within {c['drain_s']:.0f} s): {mark(v['drained'])}")
    print(f"  => {'PASS' if v['pass'] else 'FAIL'}")
