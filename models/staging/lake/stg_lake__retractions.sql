{# One row per retraction record, typed; columns in _lake__models.yml. #}
{{ config(materialized='ephemeral') }}
{% call staging_select(lake_files('ledger/retractions/*.json')) %}
select *, to_json(selection) as selection_json
from {{ source('lake', 'retractions') }}
{% endcall %}
