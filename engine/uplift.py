"""Control groups and uplift.

A customer exposed to an offer (served it, or held out from it as control) is counted once per
open window and followed for the offer's reward window; they *convert* if they buy in the
offer's category within it, or, for an offer with no `category` in the catalog, if they buy
anything within it. Both groups are measured the same way (windows still open count in
both denominators alike), so the difference in conversion rates is the offer's causal uplift.

>>> u = uplift(treated=1000, treated_conv=150, control=1000, control_conv=100)
>>> u["uplift"], u["ci95"]
(0.05, [0.0211, 0.0789])
"""

from __future__ import annotations

import math
from typing import Any

Z95 = 1.959964
MIN_GROUP = 30


def uplift(treated: int, treated_conv: int, control: int, control_conv: int) -> dict[str, Any]:
    """Difference of conversion rates (treated - control) with a 95% Wald interval."""
    out: dict[str, Any] = {"treated": treated, "treated_conversions": treated_conv,
                           "control": control, "control_conversions": control_conv,
                           "treated_rate": None, "control_rate": None, "uplift": None, "ci95": None}
    if treated:
        out["treated_rate"] = round(treated_conv / treated, 4)
    if control:
        out["control_rate"] = round(control_conv / control, 4)
    if treated and control:
        pt, pc = treated_conv / treated, control_conv / control
        out["uplift"] = round(pt - pc, 4)
        if min(treated, control) >= MIN_GROUP:
            se = math.sqrt(pt * (1 - pt) / treated + pc * (1 - pc) / control)
            out["ci95"] = [round(pt - pc - Z95 * se, 4), round(pt - pc + Z95 * se, 4)]
    return out


def track(exposures: dict[str, tuple[float, bool, str | None]], offer: str, deadline: float,
          control: bool, category: str | None) -> list[tuple[Any, ...]]:
    """Start following a customer's exposure to an offer (one open window per offer)."""
    if offer not in exposures:
        exposures[offer] = (deadline, control, category)
        return [("exposure", "offer:" + offer, control, deadline)]
    return []


def on_purchase(exposures: dict[str, tuple[float, bool, str | None]], categories: set[str],
                ts: float) -> list[tuple[Any, ...]]:
    out = []
    for offer, (deadline, control, category) in list(exposures.items()):
        if (not category or category in categories) and ts <= deadline:
            del exposures[offer]
            out.append(("conversion", "offer:" + offer, control, True, ts))
    return out


def expire(exposures: dict[str, tuple[float, bool, str | None]], now: float) -> None:
    """Close the windows that have passed (they stay counted as exposures without conversion)."""
    for offer, (deadline, _control, _category) in list(exposures.items()):
        if deadline < now:
            del exposures[offer]
