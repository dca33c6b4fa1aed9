"""CPython's cyclic garbage collector set for a long-running LiveCharts process.

CPython collects its young generation after 700 new container objects, and runs a full
collection whenever the objects promoted since the last one reach a quarter of the old
generation. Our processes hold many short-lived containers that hold no cycles (a worker's
points until the Persister writes them, about a second; a daphne's connections while a
reconnect storm builds them up), so with the defaults they are promoted and walked over and
over: full collections of 90-460 ms each, finding nothing, were about a fifth of the CPU of a
2,000-viewer storm's surviving daphne and of a worker at 1,000 streams (docs/performance.md).
Freezing what startup built (Django, the modules) keeps it out of every collection, and a
larger young generation lets most objects die before they are promoted.
"""

from __future__ import annotations

import gc


def tune_gc(young_threshold: int) -> bool:
    """Freeze what startup built and collect the young generation only after `young_threshold`
    new container objects. Once per process: False (nothing done) when the young generation is
    already at least that large (the embedded mode runs daphne and the worker in one process)."""
    if gc.get_threshold()[0] >= young_threshold:
        return False
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
    return True
