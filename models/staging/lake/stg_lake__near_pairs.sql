{# One row per pair a fingerprint part's images make; columns in _lake__models.yml. A table that
   reads only new ledger files: the ledger only grows. #}
{{ config(materialized=lake_incremental(), incremental_strategy='lake_files', read_by='near_pairs') }}
-- depends_on: {{ source('lake', 'near_pairs') }}
{%- set files = files_read_by('near_pairs') %}
{% call staging_select(files) %}
select *, filename as _file
from {{ ledger_rows(files) }}
{% endcall %}
