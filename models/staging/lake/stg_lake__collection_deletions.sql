{# One row per deleted collection version, with when it was removed. #}
-- depends_on: {{ source('lake', 'collection_deletions') }}
{% if lake_files('ledger/collections/*.json') -%}
select {{ collection_version_columns() }}, deleted_at::timestamp as deleted_at
from {{ source('lake', 'collection_deletions') }}
{%- else -%}
select {{ empty_collection_version_columns() }}, null::timestamp as deleted_at
where false
{%- endif %}
