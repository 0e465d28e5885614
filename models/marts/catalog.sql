{# One row per stored row. Incremental: a build reads only part files it has not seen, and
   drops rows whose part file is gone (a partition overwritten). #}
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='append_new_columns') }}

select *
from {{ ref('stg_lake__catalog_rows') }}
{{ only_new_files('catalog/provider=*/dataset=*/task=*/variant=*/*.parquet') }}
