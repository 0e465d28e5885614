{# One row per member of a collection version: its place, the catalog row it came from and its
   asset, where its members.parquet has them (members imported from outside the lake may have
   none); columns in _lake__models.yml. A version frozen while the store kept assets at
   `ab/cd/<hash>.<ext>` (layout 1) keeps that path in its file; it is given here in the current form.
   A table that reads only the members files of versions made since the last build, and drops
   those of deleted versions. #}
{{ config(materialized=lake_incremental(), incremental_strategy='lake_files', read_by='collection_members') }}
-- depends_on: {{ source('lake', 'collection_members') }}
{%- set files = files_read_by('collection_members') %}
{% call staging_select(files) %}
{%- set present = source_columns(parquet_rows(files)) %}
select
    {{ path_segment('filename', -3) }} || '/' || {{ path_segment('filename', -2) }} as collection_key,
    {{ path_segment('filename', -3) }} as name,
    {{ path_segment('filename', -2) }} as version,
    file_row_number as member_index,
    {%- for column in ["row_id", "provider", "dataset", "task", "variant", "hash"] %}
    {% if column in present %}{{ sql_name(column) }}{% else %}null{% endif %} as {{ sql_name(column) }},
    {%- endfor %}
    {% if "path" in present %}{{ regexp_replace_first('path', '^([0-9a-f]{2})/[0-9a-f]{2}/', 1, '/') }}{% else %}null{% endif %} as path,
    filename as _file
from {{ parquet_rows(files, 'filename') }}
{% endcall %}
