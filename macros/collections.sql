{#- The columns of a collection version's metadata.json, typed; shared by live and deleted versions. -#}

{% macro collection_version_columns() -%}
    name || '/' || version as collection_key,
    name,
    version,
    description,
    created_at::timestamp as created_at,
    created_by,
    num_samples::bigint as num_samples,
    source,
    fingerprint
{%- endmacro %}

{% macro empty_collection_version_columns() -%}
    null::varchar as collection_key, null::varchar as name, null::varchar as version,
    null::varchar as description, null::timestamp as created_at, null::varchar as created_by,
    null::bigint as num_samples, null::varchar as source, null::varchar as fingerprint
{%- endmacro %}
