{# One row per processed upload, from the ledger. #}
-- depends_on: {{ source('lake', 'uploads') }}
{% if lake_files('ledger/uploads/*.parquet') %}
select
    upload_id,
    provider,
    dataset,
    task,
    variant,
    meta,
    uploaded_by,
    uploaded_at::timestamp as uploaded_at,
    processed_at::timestamp as processed_at,
    source,
    description,
    overwrite,
    rows_in,
    rows_written,
    duplicate_rows,
    new_assets,
    reused_assets,
    new_bytes,
    filename as _file
from {{ source('lake', 'uploads') }}
{%- else %}
select
    null::varchar as upload_id, null::varchar as provider, null::varchar as dataset, null::varchar as task,
    null::varchar as variant, null::varchar as meta, null::varchar as uploaded_by,
    null::timestamp as uploaded_at, null::timestamp as processed_at, null::varchar as source,
    null::varchar as description, null::boolean as overwrite, null::bigint as rows_in,
    null::bigint as rows_written, null::bigint as duplicate_rows, null::bigint as new_assets,
    null::bigint as reused_assets, null::bigint as new_bytes, null::varchar as _file
where false
{%- endif %}
