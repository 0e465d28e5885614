{# One row per deleted collection version, with when it was removed; columns in _lake__models.yml. #}
{{ config(materialized='ephemeral') }}
{% call staging_select(lake_files('ledger/collections/*.json')) %}
select *, name || '/' || version as collection_key
from {{ json_rows('collection_deletions', 'ledger/collections/*.json', computed=['collection_key']) }}
{% endcall %}
