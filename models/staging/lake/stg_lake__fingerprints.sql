{# One row per asset a fingerprint run looked at; columns in _lake__models.yml. A table that reads
   only new ledger files: the ledger only grows. #}
{{ config(materialized=lake_incremental(), incremental_strategy='lake_files', read_by='fingerprints') }}
-- depends_on: {{ source('lake', 'fingerprints') }}
{%- set files = files_read_by('fingerprints') %}
{% call staging_select(files) %}
select *, filename as _file
from {{ ledger_rows(files) }}
{% endcall %}
