{# One row per live collection version, from its metadata.json (folders being written are hidden). #}
-- depends_on: {{ source('lake', 'collections') }}
{% if lake_files('collections/*/*/metadata.json') -%}
select {{ collection_version_columns() }}
from {{ source('lake', 'collections') }}
where not {{ in_hidden_collection_folder('filename') }}
{%- else -%}
select {{ empty_collection_version_columns() }}
where false
{%- endif %}
