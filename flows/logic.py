"""Stateful steps for bytewax: one call per key per batch, snapshots as pickled bytes.

bytewax's `stateful_flat_map` deep-copies the state at every snapshot and calls the mapper once
per item; for a customer's state that copy cost more than the processing itself. Here a step
function sees all of a key's items in a batch at once, and a snapshot is one `pickle.dumps`.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable
from typing import Any

from bytewax.dataflow import Stream
from bytewax.operators import KeyedStream, StatefulBatchLogic, stateful_batch

Step = Callable[[Any, list[Any]], tuple[Any, Iterable[Any]]]


class _Logic(StatefulBatchLogic[Any, Any, bytes]):
    def __init__(self, step: Step, resume: bytes | None) -> None:
        self.step = step
        self.state = pickle.loads(resume) if resume is not None else None

    def on_batch(self, values: list[Any]) -> tuple[Iterable[Any], bool]:
        self.state, out = self.step(self.state, values)
        return out, self.state is None

    def snapshot(self) -> bytes:
        return pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)


def batched(step_id: str, up: KeyedStream[Any], step: Step) -> KeyedStream[Any]:
    """`step(state, items) -> (state, outputs)` per key per batch; state None drops the key."""
    return stateful_batch(step_id, up, lambda resume: _Logic(step, resume))


__all__ = ["Stream", "batched"]
