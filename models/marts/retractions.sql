{# One row per retraction: who, when, why, and what left the lake (ledger/retractions/). #}
select
    retraction_id,
    reason,
    retracted_by,
    started_at,
    completed_at,
    completed_at is not null as is_complete,
    selection_json as selection,
    force,
    rows,
    list_sort(list_distinct(list_transform(parts, lambda p: p."partition"))) as partitions,
    len(parts) as part_files,
    list_transform(collections, lambda c: c."name" || '/' || c."version") as collection_versions,
    coalesce(list_sum(list_transform(collections, lambda c: c.members)), 0)::bigint as collection_members,
    hashes,
    len(assets) as asset_files,
    bytes,
    database
from {{ ref('stg_lake__retractions') }}
