{# One row per collection version ever made: live ones, and deleted ones with when they were removed. #}
select collection_key, name, version, description, created_at, created_by, num_samples, fingerprint,
       null::timestamp as deleted_at
from {{ ref('collections') }}
union all
select collection_key, name, version, description, created_at, created_by, num_samples, fingerprint, deleted_at
from {{ ref('stg_lake__collection_deletions') }}
where collection_key not in (select collection_key from {{ ref('collections') }})
