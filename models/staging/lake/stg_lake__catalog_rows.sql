{# One row per row of the part files this build reads (new or replaced ones; every one in a full
   build), with its partition and part file (_file) from the part's path, and a stable row_id (the
   upload id in the part's name, the row's number in the part as its upload wrote it: a part a
   retraction rewrote keeps that number in `_row_number`). These columns are the lake's (and
   the catalog's `_build`): a part's own column of the same name, in any case, is left out. The
   file name column gets a name no part uses, so a user's `filename` or `_file` column is no
   trouble. With no such files, an empty view of the lake's columns, as _lake__models.yml declares. #}
-- depends_on: {{ source('lake', 'catalog') }}
{#- A table on Spark, whose metastore keeps a view's text, at most 32,700 characters: too few for
    the names of a few hundred part files. #}
{{ config(materialized='view' if target.type == 'duckdb' else 'table') }}
{%- set partition = ["provider", "dataset", "task", "variant"] -%}
{%- set base = ["hash", "path", "_upload_id", "_uploaded_by", "_uploaded_at", "_source_name"] -%}
{%- set files = files_read_by('catalog') %}
{%- if files %}
{%- set columns = source_columns(parquet_rows(files)) -%}
{%- set lowered = columns | map('lower') | list -%}
{%- if 'file_row_number' in lowered -%}{{ refuse_file_row_number_column(files) }}{%- endif -%}
{%- set file = unused_name('_file', lowered) %}
{%- set left_out = [] %}
{%- for column in columns if column | lower in partition + ["row_id", "_file", "_build", "_row_number"] %}{% do left_out.append(column) %}{% endfor %}
select
    {{ part_path_field(file, 'upload_id') }} || ':' ||
    {{- ' coalesce(_row_number, file_row_number)' if '_row_number' in lowered else ' file_row_number' }} as row_id,
    {%- for key in partition %}
    {{ part_path_field(file, key) }} as {{ key }},
    {%- endfor %}
    {{ star_except(left_out + [file, 'file_row_number']) }},
    {%- for column in base if column not in lowered %}
    {{ typed('null', 'varchar') }} as {{ column }},
    {%- endfor %}
    {{ sql_name(file) }} as _file
from {{ parquet_rows(files, file) }}
{%- else %}
{{ empty_select() }}
{%- endif %}
