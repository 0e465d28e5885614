{#- One row per partition (provider / dataset / task / variant). Rows, uploads and last upload
    time come from one aggregate per partition and upload, distinct assets from the distinct
    (partition, hash) pairs: cheaper than count(distinct) inside the group by. -#}
with files as (
    select provider, dataset, task, variant, _upload_id, count(*) as num_rows, max(_uploaded_at) as last_upload_at
    from {{ ref('catalog') }}
    group by all
),

assets as (
    select provider, dataset, task, variant, count(*) as num_assets
    from (select distinct provider, dataset, task, variant, hash from {{ ref('catalog') }} where hash is not null)
    group by all
)

select
    provider || '/' || dataset || '/' || task || '/' || variant as partition_key,
    provider,
    dataset,
    task,
    variant,
    sum(files.num_rows)::bigint as num_rows,
    coalesce(any_value(assets.num_assets), 0) as num_assets,
    count(distinct _upload_id) as num_uploads,
    max(files.last_upload_at)::timestamp as last_upload_at
from files
left join assets using (provider, dataset, task, variant)
group by all
