{#- One row per stored asset, with how many rows and which datasets reference it. Incremental:
    only the assets whose rows this build added or dropped, or that new ledger files describe,
    are computed again. When the build only added rows (no part file replaced or gone), their
    references are added to those the asset had; otherwise they are counted again in the catalog. -#}
{{ config(materialized=lake_incremental(), incremental_strategy='touched_keys', unique_key='hash',
          touched='touched_hashes') }}

{%- set incremental = is_incremental() %}
{%- set touched = "hash in (select hash from lake_build.touched_hashes)" if incremental else "true" %}
{%- set only_added = incremental and in_database('lake_build', 'dropped_hashes')
      and run_query("select count(*) from lake_build.dropped_hashes").columns[0].values()[0] == 0 %}

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

{%- if only_added %}

added as (
    select hash, count(*) as num_rows, list(distinct provider || '/' || dataset) as datasets
    from {{ ref('catalog') }}
    where hash is not null and _build = {{ this_build() }}
    group by hash
),

refs as (
    select
        hash,
        coalesce(held.num_rows, 0) + coalesce(added.num_rows, 0) as num_rows,
        nullif(array_to_string(list_sort(list_distinct(
            coalesce(string_split(held.datasets, ','), []) || coalesce(added.datasets, []))), ','), '') as datasets
    from added
    full join (select hash, num_rows, datasets from {{ this }} where {{ touched }}) as held using (hash)
)
{%- else %}

refs as (
    select
        hash,
        count(*) as num_rows,
        {{ sorted_distinct_join("provider || '/' || dataset", ',') }} as datasets
    from {{ ref('catalog') }}
    where hash is not null and {{ touched }}
    group by hash
)
{%- endif %}

select
    facts.*,
    coalesce(refs.num_rows, 0) as num_rows,
    refs.datasets
from facts
left join refs using (hash)
