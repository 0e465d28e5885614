{# One row per processed upload, from the ledger; columns in _lake__models.yml. #}
{{ config(materialized='ephemeral') }}
{% call staging_select('ledger/uploads/*.parquet') %}
select *, filename as _file
from {{ source('lake', 'uploads') }}
{% endcall %}
