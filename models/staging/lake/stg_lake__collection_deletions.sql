{# One row per deleted collection version, with when it was removed. #}
-- depends_on: {{ source('lake', 'collection_deletions') }}
{% if lake_files('ledger/collections/*.json') -%}
select
    name || '/' || version as collection_key,
    name,
    version,
    description,
    created_at::timestamp as created_at,
    created_by,
    num_samples::bigint as num_samples,
    source,
    fingerprint,
    deleted_at::timestamp as deleted_at
from {{ source('lake', 'collection_deletions') }}
{%- else -%}
select
    null::varchar as collection_key, null::varchar as name, null::varchar as version,
    null::varchar as description, null::timestamp as created_at, null::varchar as created_by,
    null::bigint as num_samples, null::varchar as source, null::varchar as fingerprint,
    null::timestamp as deleted_at
where false
{%- endif %}
