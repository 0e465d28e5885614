{#- One row per stored asset, with how many rows and which datasets reference it. -#}
with facts as (
    select
        hash,
        any_value(path) as path,
        any_value(kind) as kind,
        any_value(ext) as ext,
        any_value(bytes) as bytes,
        any_value(width) as width,
        any_value(height) as height,
        min(upload_id) as first_upload_id
    from {{ ref('stg_lake__asset_facts') }}
    group by hash
),

refs as (
    select
        hash,
        count(*) as num_rows,
        string_agg(distinct provider || '/' || dataset, ',' order by provider || '/' || dataset) as datasets
    from {{ ref('catalog') }}
    where hash is not null
    group by hash
)

select
    facts.*,
    coalesce(refs.num_rows, 0) as num_rows,
    refs.datasets
from facts
left join refs using (hash)
