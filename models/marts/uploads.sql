{# One row per processed upload: who, when, what it brought. Incremental: new ledger files only. #}
{{ config(materialized=lake_incremental(), incremental_strategy='lake_files', read_by='uploads',
          on_schema_change='append_new_columns') }}

select *
from {{ ref('stg_lake__uploads') }}
