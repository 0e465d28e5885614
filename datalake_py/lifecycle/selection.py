"""What a retraction takes: rows chosen by partition names, asset hashes and upload id, as SQL
conditions over the files that hold rows (catalog parts, collection members, staged uploads)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

from ..errors import ValidationError
from ..lake import PARTITION_COLUMNS, Partition, check_hash, check_name
from ..sql import quote

FILTER_KEYS = ("providers", "datasets", "tasks", "variants")  # the partition columns, one list each


def _names(values: Sequence[str] | str | None, what: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    return tuple(sorted({check_name(v, what) for v in values}))


@dataclass(frozen=True)
class Selection:
    """Rows to retract: those of the named partitions (exact names; each list empty for any) that
    carry one of `hashes` (when given) and came with `upload_id` (when given). At least one is given."""

    providers: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()
    hashes: tuple[str, ...] = ()
    upload_id: str | None = None

    @classmethod
    def of(cls, providers: Sequence[str] | str | None = None, datasets: Sequence[str] | str | None = None,
           tasks: Sequence[str] | str | None = None, variants: Sequence[str] | str | None = None,
           hashes: Sequence[str] | str | None = None, upload_id: str | None = None) -> "Selection":
        """A checked selection; ValidationError for a bad name or hash, or when nothing is named."""
        if isinstance(hashes, str):
            hashes = [hashes]
        chosen = cls(_names(providers, "provider"), _names(datasets, "dataset"), _names(tasks, "task"),
                     _names(variants, "variant"), tuple(sorted({check_hash(h) for h in hashes or ()})),
                     None if upload_id is None else check_name(upload_id, "upload"))
        if not (chosen.partition_filters() or chosen.hashes or chosen.upload_id):
            raise ValidationError("name what to retract: datasets, providers, tasks, variants, asset hashes or an "
                                  "upload id (a retraction never takes the whole lake by default)")
        return chosen

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def describe(self) -> str:
        """The selection in words, for messages: `dataset coco, task ocr`."""
        parts = [f"{key[:-1]} {', '.join(values)}" for key, values in self.partition_filters().items()]
        parts += [f"hash {', '.join(self.hashes)}"] if self.hashes else []
        parts += [f"upload {self.upload_id}"] if self.upload_id else []
        return "; ".join(parts)

    def partition_filters(self) -> dict[str, tuple[str, ...]]:
        return {key: getattr(self, key) for key in FILTER_KEYS if getattr(self, key)}

    def takes_partition(self, partition: Partition) -> bool:
        """Whether rows of `partition` can be selected (its names pass every partition filter)."""
        return all(getattr(partition, column) in getattr(self, key)
                   for key, column in zip(FILTER_KEYS, PARTITION_COLUMNS) if getattr(self, key))

    def condition(self, columns: set[str], partition: Partition | None = None) -> tuple[str, list[Any]]:
        """A SQL condition (and its parameters) true for the selected rows of a file with `columns`;
        with `partition` its partition names are known from where the file is, else read from its
        columns. A filter on a column the file lacks selects none of its rows."""
        conditions, params = [], []
        for key, column in zip(FILTER_KEYS, PARTITION_COLUMNS):
            values = getattr(self, key)
            if not values:
                continue
            if partition is not None:
                conditions.append("true" if getattr(partition, column) in values else "false")
            elif column in columns:
                conditions.append(f"list_contains(?, {quote(column)})")
                params.append(list(values))
            else:
                conditions.append("false")
        for column, values in (("hash", list(self.hashes)), ("_upload_id", [self.upload_id] if self.upload_id else [])):
            if values:
                conditions.append(f"list_contains(?, {quote(column)})" if column in columns else "false")
                params += [values] if column in columns else []
        return "coalesce(" + " and ".join(conditions) + ", false)", params
