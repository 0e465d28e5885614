{#- One row per image asset with its perceptual fingerprint (`datalake curate index` computes them
    after processing), the asset's size and where it is used. A view over the fingerprints the
    build has read: it costs nothing to build and always agrees with `assets`. -#}
{{ config(materialized='view') }}

select
    fingerprints.hash,
    fingerprints.fingerprint,
    fingerprints.fingerprinted_at,
    assets.path,
    assets.width,
    assets.height,
    assets.num_rows,
    assets.datasets
from {{ ref('stg_lake__fingerprints') }} as fingerprints
join {{ ref('assets') }} as assets using (hash)
where fingerprints.fingerprint is not null
qualify row_number() over (partition by fingerprints.hash order by fingerprints.fingerprinted_at) = 1
