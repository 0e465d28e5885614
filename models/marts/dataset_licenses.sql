{#- One row per dataset in the catalog with its effective license: the one its latest upload named,
    else its provider's in config/schema.yaml (as this build read it), with what the seed `licenses`
    says of it. Small: built whole every time. -#}
-- depends_on: {{ ref('uploads') }}
{%- set upload_columns = adapter.get_columns_in_relation(ref('uploads')) | map(attribute='name')
                         | map('lower') | list if execute else [] %}

with datasets as (
    select distinct provider, dataset from {{ ref('partitions') }}
),

upload_licenses as (
    {%- if 'license' in upload_columns %}
    select provider, dataset, license, license_name, license_url
    from {{ ref('uploads') }}
    where license is not null
    qualify row_number() over (partition by provider, dataset order by uploaded_at desc, upload_id desc) = 1
    {%- else %}
    {#- a lake whose uploads all came before licenses: none named one #}
    select null::varchar as provider, null::varchar as dataset, null::varchar as license,
           null::varchar as license_name, null::varchar as license_url
    where false
    {%- endif %}
),

chosen as (
    select
        d.provider,
        d.dataset,
        coalesce(u.license, p.license) as license,
        case when u.license is not null then u.license_name else p.license_name end as license_name,
        case when u.license is not null then u.license_url else p.license_url end as license_url,
        case when u.license is not null then 'upload' when p.license is not null then 'provider' end as source
    from datasets as d
    left join upload_licenses as u using (provider, dataset)
    left join {{ ref('stg_lake__provider_licenses') }} as p using (provider)
)

select
    chosen.provider,
    chosen.dataset,
    chosen.license,
    coalesce(known.name, chosen.license_name) as name,
    coalesce(known.url, chosen.license_url) as url,
    known.commercial_use,
    known.attribution_required,
    chosen.source
from chosen
left join {{ ref('licenses') }} as known on known.id = chosen.license
