{#- Fails for every part file whose rows the catalog does not hold exactly, as many times as the file
    has them: one row per such file with its rows in the file and in the catalog. The files are those
    recorded at the start of the build (macros/lake.sql) and still there: uploads landing meanwhile
    wait for the next build, and so do files an overwrite removed meanwhile. -#}
with held as (
    select _file, count(*) as num_rows
    from {{ ref('catalog') }}
    group by _file
)

select _file, coalesce(files.num_rows, 0) as rows_in_file, coalesce(held.num_rows, 0) as rows_in_catalog
from {{ read_files('catalog') }} as files
full join held using (_file)
where coalesce(files.num_rows, 0) != coalesce(held.num_rows, 0)
  and _file in (select file from glob({{ lake_glob(catalog_parts()) }}))
