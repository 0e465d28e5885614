{# One row per asset an upload brought (the same asset may come from several uploads). #}
-- depends_on: {{ source('lake', 'asset_facts') }}
{% if lake_files('ledger/assets/*.parquet') %}
select
    hash,
    path,
    kind,
    ext,
    bytes,
    width,
    height,
    regexp_extract(filename, '([^/]+)\.parquet$', 1) as upload_id
from {{ source('lake', 'asset_facts') }}
{%- else %}
select
    null::varchar as hash, null::varchar as path, null::varchar as kind, null::varchar as ext,
    null::bigint as bytes, null::integer as width, null::integer as height, null::varchar as upload_id
where false
{%- endif %}
