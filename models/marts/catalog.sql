{#- One row per stored row. Incremental: a build reads only part files it has not seen, and
    drops rows whose part file is gone (a partition overwritten). -#}
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='append_new_columns') }}

{%- set new_files = [] -%}
{%- if is_incremental() and execute -%}
    {%- set on_disk = lake_files('catalog/provider=*/dataset=*/task=*/variant=*/*.parquet') -%}
    {%- set known = run_query("select distinct _file from " ~ this).columns[0].values() | list -%}
    {%- set gone = known | reject('in', on_disk) | list -%}
    {%- if gone -%}
        {%- do run_query("delete from " ~ this ~ " where _file in (" ~ string_list(gone) ~ ")") -%}
    {%- endif -%}
    {%- set new_files = on_disk | reject('in', known) | list -%}
{%- endif %}

select *
from {{ ref('stg_lake__catalog_rows') }}
{%- if is_incremental() %}
where {% if new_files %}_file in ({{ string_list(new_files) }}){% else %}false{% endif %}
{%- endif %}
