{# One row per asset an upload brought (the same asset may come from several uploads); columns in
   _lake__models.yml. A table that reads only new ledger files: the ledger only grows. #}
{{ config(materialized=lake_incremental(), incremental_strategy='lake_files', read_by='asset_facts') }}
-- depends_on: {{ source('lake', 'asset_facts') }}
{%- set files = files_read_by('asset_facts') %}
{% call staging_select(files) %}
select *, regexp_extract(filename, '([^/]+)\.parquet$', 1) as upload_id, filename as _file
from {{ ledger_rows(files) }}
{% endcall %}
