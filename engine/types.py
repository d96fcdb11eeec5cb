"""Type aliases shared across the engine."""

from typing import Any

Event = dict[str, Any]          # a validated event, `ts` as Unix seconds (float)
Features = dict[str, float]     # feature name -> value
Attributes = dict[str, Any]     # profile attributes: scalars
Context = dict[str, Any]        # request context of a decision
Vector = dict[str, float]       # model input: numbers, categories one-hot as "name=value"
