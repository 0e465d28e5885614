{# One row per member of a collection version: its place, the catalog row it came from (if any) and its asset. #}
-- depends_on: {{ source('lake', 'collection_members') }}
{% if lake_files('collections/*/*/members.parquet') -%}
{%- set columns = source_columns(source('lake', 'collection_members')) -%}
select
    parts[-3] || '/' || parts[-2] as collection_key,
    parts[-3] as name,
    parts[-2] as version,
    file_row_number as member_index,
    {%- for column in ["row_id", "provider", "dataset", "task", "variant", "hash", "path"] %}
    {% if column in columns %}{{ column }}{% else %}null::varchar as {{ column }}{% endif %},
    {%- endfor %}
    filename as _file
from (select *, string_split(filename, '/') as parts from {{ source('lake', 'collection_members') }})
where not {{ in_hidden_collection_folder('filename') }}
{%- else -%}
select
    null::varchar as collection_key, null::varchar as name, null::varchar as version,
    null::bigint as member_index,
    {%- for column in ["row_id", "provider", "dataset", "task", "variant", "hash", "path"] %}
    null::varchar as {{ column }},
    {%- endfor %}
    null::varchar as _file
where false
{%- endif %}
