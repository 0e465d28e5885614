{# One row per live collection version, from its metadata.json (folders being written are hidden);
   columns in _lake__models.yml. #}
{% call staging_select(lake_files('collections/*/*/metadata.json')) %}
select *, name || '/' || version as collection_key
from {{ json_rows('collections', 'collections/*/*/metadata.json', computed=['collection_key']) }}
where not {{ in_hidden_collection_folder('filename') }}
{% endcall %}
