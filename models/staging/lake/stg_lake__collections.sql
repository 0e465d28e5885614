{# One row per live collection version, from its metadata.json (folders being written are hidden). #}
-- depends_on: {{ source('lake', 'collections') }}
{% if lake_files('collections/*/*/metadata.json') -%}
select
    name || '/' || version as collection_key,
    name,
    version,
    description,
    created_at::timestamp as created_at,
    created_by,
    num_samples::bigint as num_samples,
    source,
    fingerprint
from {{ source('lake', 'collections') }}
where filename not like '%/.%'
{%- else -%}
select
    null::varchar as collection_key, null::varchar as name, null::varchar as version,
    null::varchar as description, null::timestamp as created_at, null::varchar as created_by,
    null::bigint as num_samples, null::varchar as source, null::varchar as fingerprint
where false
{%- endif %}
