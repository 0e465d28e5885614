{# One row per stored row, with the build that read it (`_build`). Incremental: a build reads only
   the part files whose rows it does not hold, and drops rows whose part file is gone (a partition
   overwritten); see macros/lake.sql. #}
{{ config(materialized=lake_incremental(), incremental_strategy='lake_files', read_by='catalog',
          on_schema_change='append_new_columns') }}

select *, {{ this_build() }} as _build
from {{ ref('stg_lake__catalog_rows') }}
