{#- One row per partition (provider / dataset / task / variant). -#}
select
    provider || '/' || dataset || '/' || task || '/' || variant as partition_key,
    provider,
    dataset,
    task,
    variant,
    count(*) as num_rows,
    count(distinct hash) as num_assets,
    count(distinct _upload_id) as num_uploads,
    max(_uploaded_at)::timestamp as last_upload_at
from {{ ref('catalog') }}
group by all
