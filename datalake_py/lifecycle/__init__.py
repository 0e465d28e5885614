"""The end of data's life in the lake: retraction (rows and assets removed for good, recorded in a
ledger) and garbage collection (store files and leftovers nothing references).

Both run under the `store` lake lock held exclusively; every writer that can add a reference to
a stored asset (an upload being staged, processing, a collection import) holds it shared, so
while either runs, the references on disk are all there is (docs/internals.md, "Retraction and
garbage collection").
"""

from .garbage import GarbageReport, collect_garbage
from .retraction import Retraction, list_retractions, retract
from .selection import Selection

__all__ = ["GarbageReport", "Retraction", "Selection", "collect_garbage", "list_retractions", "retract"]
