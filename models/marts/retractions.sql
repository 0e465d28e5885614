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
    {{ list_sorted_distinct(list_transform('parts', 'p', 'p.' ~ sql_name('partition'))) }} as partitions,
    {{ list_length('parts') }} as part_files,
    {{ list_transform('collections', 'c', 'c.' ~ sql_name('name') ~ " || '/' || c." ~ sql_name('version')) }}
        as collection_versions,
    {{ typed('coalesce(' ~ list_total(list_transform('collections', 'c', 'c.members')) ~ ', 0)', 'bigint') }}
        as collection_members,
    hashes,
    {{ list_length('assets') }} as asset_files,
    bytes,
    database
from {{ ref('stg_lake__retractions') }}
