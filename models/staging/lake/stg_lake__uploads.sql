{# One row per processed upload, from the ledger files this build reads (new ones; every one in a
   full build); columns in _lake__models.yml. #}
{{ config(materialized='ephemeral') }}
-- depends_on: {{ source('lake', 'uploads') }}
{%- set files = files_read_by('uploads') %}
{% call staging_select(files) %}
select *, filename as _file
from {{ ledger_rows(files) }}
{% endcall %}
