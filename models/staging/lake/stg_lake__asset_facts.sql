{# One row per asset an upload brought (the same asset may come from several uploads); columns in _lake__models.yml. #}
{% call staging_select('ledger/assets/*.parquet') %}
select *, regexp_extract(filename, '([^/]+)\.parquet$', 1) as upload_id
from {{ source('lake', 'asset_facts') }}
{% endcall %}
