{#- One row per stored asset, with how many rows and which datasets reference it. Incremental:
    only the assets whose rows this build added or dropped, or that new ledger files describe,
    are computed again. -#}
{{ config(materialized='incremental', incremental_strategy='touched_keys', unique_key='hash',
          touched='touched_hashes') }}

{%- set touched = "hash in (select hash from lake_build.touched_hashes)" if is_incremental() else "true" %}

with facts as (
    select
        hash,
        min(path) as path,
        min(kind) as kind,
        min(ext) as ext,
        any_value(bytes) as bytes,
        any_value(width) as width,
        any_value(height) as height,
        min(upload_id) as first_upload_id
    from {{ ref('stg_lake__asset_facts') }}
    where {{ touched }}
    group by hash
),

refs as (
    select
        hash,
        count(*) as num_rows,
        string_agg(distinct provider || '/' || dataset, ',' order by provider || '/' || dataset) as datasets
    from {{ ref('catalog') }}
    where hash is not null and {{ touched }}
    group by hash
)

select
    facts.*,
    coalesce(refs.num_rows, 0) as num_rows,
    refs.datasets
from facts
left join refs using (hash)
