{# One row per live collection version; `is_latest` marks the newest of each collection. #}
select
    *,
    row_number() over (partition by name order by created_at desc, version desc) = 1 as is_latest
from {{ ref('stg_lake__collections') }}
