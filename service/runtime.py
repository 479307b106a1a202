"""Process tuning applied once the service has started.

The cyclic garbage collector otherwise runs every 700 container allocations and, every so often,
walks every object the process holds: the imported modules, FastAPI's routes and pydantic's
schemas included, none of which ever becomes garbage. After start-up those are moved out of its
sight (gc.freeze) and the young generation is collected less often; request objects are freed by
reference counting anyway, the collector only has to find the rare cycles.
"""

from __future__ import annotations

import gc

# Young-generation threshold (allocations minus deallocations of container objects) and how many
# young and middle collections run before the next older one.
GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
