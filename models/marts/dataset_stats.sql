{#- One row per partition with what its rows and assets look like: sizes of its images, file
    types, duplicate rows its uploads dropped, label lengths and near-duplicates. Percentiles are
    nearest-rank (percentiles_disc: always a value that occurs). The label is the catalog's `label`
    column (the one searches and the pages read); a lake without one has no label lengths.
    Incremental: only the partitions whose rows, uploads, or assets' fingerprints and near pairs
    this build read are computed again (lake_build.touched_stats_partitions). -#}
{{ config(materialized=lake_incremental(), incremental_strategy='touched_keys', unique_key='partition_key',
          touched='touched_stats_partitions') }}

{%- set has_label = execute and 'label' in (adapter.get_columns_in_relation(ref('catalog'))
      | map(attribute='name') | map('lower') | list) %}
{%- set touched = "semi join lake_build.touched_stats_partitions using (provider, dataset, task, variant)"
      if is_incremental() else "" %}

with partition_assets as (
    select distinct provider, dataset, task, variant, hash
    from {{ ref('catalog') }}
    {{ touched }}
    where hash is not null
),

near as (
    select hash_a as hash from {{ ref('near_duplicates') }} where distance <= {{ var('near_duplicate_threshold') }}
    union
    select hash_b from {{ ref('near_duplicates') }} where distance <= {{ var('near_duplicate_threshold') }}
),

asset_stats as (
    select
        provider, dataset, task, variant,
        count(stored.width) as image_assets,
        {{ percentiles_disc('stored.width') }} as widths,
        {{ percentiles_disc('stored.height') }} as heights,
        {{ value_counts('stored.ext') }} as file_types,
        count(fingerprints.hash) as fingerprinted_assets,
        count(near.hash) as near_duplicate_assets
    from partition_assets
    left join {{ ref('assets') }} as stored using (hash)
    left join {{ ref('asset_fingerprints') }} as fingerprints using (hash)
    left join near using (hash)
    group by all
),

since_overwrite as (
    select provider, dataset, task, variant,
           max(upload_id) filter (where overwrite) as last_overwrite
    from {{ ref('uploads') }}
    {{ touched }}
    group by all
),

duplicates as (
    select provider, dataset, task, variant, {{ typed('sum(uploads.duplicate_rows)', 'bigint') }} as duplicate_rows
    from {{ ref('uploads') }} as uploads
    join since_overwrite using (provider, dataset, task, variant)
    where last_overwrite is null or upload_id >= last_overwrite
    group by all
),

labels as (
    select
        provider, dataset, task, variant,
        {%- if has_label %}
        count(label) as label_rows,
        {{ percentiles_disc('length(' ~ typed('label', 'varchar') ~ ')') }} as label_lengths
        {%- else %}
        {{ typed('0', 'bigint') }} as label_rows,
        {{ typed('null', 'bigint[]') }} as label_lengths
        {%- endif %}
    from {{ ref('catalog') }}
    {{ touched }}
    group by all
)

select
    partitions.partition_key,
    partitions.provider,
    partitions.dataset,
    partitions.task,
    partitions.variant,
    partitions.num_rows,
    partitions.num_assets,
    partitions.bytes,
    coalesce(asset_stats.image_assets, 0) as image_assets,
    {{ list_item('asset_stats.widths', 1) }} as width_p5,
    {{ list_item('asset_stats.widths', 2) }} as width_p50,
    {{ list_item('asset_stats.widths', 3) }} as width_p95,
    {{ list_item('asset_stats.heights', 1) }} as height_p5,
    {{ list_item('asset_stats.heights', 2) }} as height_p50,
    {{ list_item('asset_stats.heights', 3) }} as height_p95,
    coalesce(asset_stats.file_types, {{ empty_counts() }}) as file_types,
    coalesce(duplicates.duplicate_rows, 0) as duplicate_rows,
    labels.label_rows,
    {{ list_item('labels.label_lengths', 1) }} as label_length_p5,
    {{ list_item('labels.label_lengths', 2) }} as label_length_p50,
    {{ list_item('labels.label_lengths', 3) }} as label_length_p95,
    coalesce(asset_stats.fingerprinted_assets, 0) as fingerprinted_assets,
    if(asset_stats.fingerprinted_assets > 0, asset_stats.near_duplicate_assets, null) as near_duplicate_assets
from {{ ref('partitions') }} as partitions
{{ touched }}
left join asset_stats using (provider, dataset, task, variant)
left join duplicates using (provider, dataset, task, variant)
left join labels using (provider, dataset, task, variant)
