{#- One row per partition (provider / dataset / task / variant). Rows, uploads and last upload
    time come from part_files, distinct assets and their bytes from the distinct (partition, hash)
    pairs of the catalog (cheaper than count(distinct) inside the group by). Incremental: only the partitions
    whose part files this build read or dropped are computed again. -#}
{{ config(materialized=lake_incremental(), incremental_strategy='touched_keys', unique_key='partition_key',
          touched='touched_partitions') }}

with files as (
    select * from {{ ref('part_files') }}
    {%- if is_incremental() %}
    where partition_key in (select partition_key from lake_build.touched_partitions)
    {%- endif %}
),

assets as (
    select provider, dataset, task, variant, count(*) as num_assets, sum(stored.bytes)::bigint as bytes
    from (
        select distinct provider, dataset, task, variant, hash
        from {{ ref('catalog') }}
        {%- if is_incremental() %}
        semi join lake_build.touched_partitions using (provider, dataset, task, variant)
        {%- endif %}
        where hash is not null
    )
    left join {{ ref('assets') }} as stored using (hash)
    group by all
)

select
    partition_key,
    provider,
    dataset,
    task,
    variant,
    sum(files.num_rows)::bigint as num_rows,
    coalesce(any_value(assets.num_assets), 0) as num_assets,
    coalesce(any_value(assets.bytes), 0) as bytes,
    count(*) as num_uploads,
    max(files.last_upload_at)::timestamp as last_upload_at
from files
left join assets using (provider, dataset, task, variant)
group by all
