{# One row per stored row, with its partition, a stable row_id and the part file it is in.
    An empty lake gives an empty view with the contract's columns. #}
-- depends_on: {{ source('lake', 'catalog') }}
{% set base = ["hash", "path", "_upload_id", "_uploaded_by", "_uploaded_at"] -%}
{%- if lake_files('catalog/provider=*/dataset=*/task=*/variant=*/*.parquet') -%}
{%- set columns = source_columns(source('lake', 'catalog')) -%}
select
    _upload_id || ':' || file_row_number as row_id,
    provider,
    dataset,
    task,
    variant,
    * exclude (provider, dataset, task, variant, filename, file_row_number),
    {%- for column in base if column not in columns %}
    null::varchar as {{ column }},
    {%- endfor %}
    filename as _file
from {{ source('lake', 'catalog') }}
{%- else %}
select
    null::varchar as row_id,
    null::varchar as provider,
    null::varchar as dataset,
    null::varchar as task,
    null::varchar as variant,
    {%- for column in base %}
    null::varchar as {{ column }},
    {%- endfor %}
    null::varchar as _file
where false
{%- endif %}
