{# One row per asset an upload brought (the same asset may come from several uploads); columns in
   _lake__models.yml. A table that reads only new ledger files: the ledger only grows. #}
{{ config(materialized='incremental', incremental_strategy='lake_files', read_by='asset_facts') }}

select * from (
{% call staging_select('ledger/assets/*.parquet') %}
select *, regexp_extract(filename, '([^/]+)\.parquet$', 1) as upload_id, filename as _file
from {{ source('lake', 'asset_facts') }}
{% endcall %}
) as facts
{{ files_to_read() }}
