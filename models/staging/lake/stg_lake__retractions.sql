{# One row per retraction record, typed; columns in _lake__models.yml. #}
{{ config(materialized='ephemeral') }}
{% call staging_select(lake_files('ledger/retractions/*.json')) %}
select *, {{ json_text('selection') }} as selection_json
from {{ json_rows('retractions', 'ledger/retractions/*.json', computed=['selection_json'], objects=['selection']) }}
{% endcall %}
