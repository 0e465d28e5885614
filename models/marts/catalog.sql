{# One row per stored row. Incremental: a build reads only the part files whose rows it does not
   hold, and drops rows whose part file is gone (a partition overwritten); see macros/lake.sql. #}
{{ config(materialized='incremental', incremental_strategy='lake_files', on_schema_change='append_new_columns') }}

select *
from {{ ref('stg_lake__catalog_rows') }}
{{ files_to_read() }}
