{#- Fails for every part file whose rows the catalog does not hold exactly, as many times as the file
    has them: one row per such file with its rows in the file and in the catalog. The files are those
    this build read or dropped (every file in a full build or check), as recorded at its start
    (macros/lake.sql) and still there: uploads landing meanwhile wait for the next build, and so do
    files an overwrite removed meanwhile. -#}
{{ config(store_failures=true) }}
{%- set every_row = checking_every_row() %}
with held as (
    select _file, count(*) as num_rows
    from {{ ref('catalog') }}
    {%- if not every_row %}
    where _build = {{ this_build() }}
    {%- endif %}
    group by _file
),

files as (
    select * from {{ read_files('catalog') }}
    {%- if not every_row %}
    where _file in {{ changed_files('catalog') }}
    {%- endif %}
)

select _file, coalesce(files.num_rows, 0) as rows_in_file, coalesce(held.num_rows, 0) as rows_in_catalog
from files
full join held using (_file)
where coalesce(files.num_rows, 0) != coalesce(held.num_rows, 0)
  and _file in {{ lake_file_names(catalog_parts()) }}
