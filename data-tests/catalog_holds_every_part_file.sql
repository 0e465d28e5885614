{#- Fails for every part file whose rows the catalog does not hold exactly, as many times as the file
    has them: one row per such file with its rows in the file and in the catalog. The files are the
    ones recorded at the start of the build (macros/lake.sql), so uploads landing meanwhile are no failure. -#}
with held as (
    select _file, count(*) as num_rows
    from {{ ref('catalog') }}
    group by _file
)

select _file, coalesce(files.num_rows, 0) as rows_in_file, coalesce(held.num_rows, 0) as rows_in_catalog
from {{ read_files('catalog') }} as files
full join held using (_file)
where coalesce(files.num_rows, 0) != coalesce(held.num_rows, 0)
