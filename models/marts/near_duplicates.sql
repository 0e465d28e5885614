{#- One row per pair of near-duplicate image assets across the lake (fingerprints within 14 bits),
    each pair once, with where each side is used. A view over the pairs the build has read: it
    costs nothing to build and always agrees with `assets`. -#}
{{ config(materialized='view') }}

with pairs as (
    select hash_a, hash_b, min(distance) as distance
    from {{ ref('stg_lake__near_pairs') }}
    group by hash_a, hash_b
)

select
    pairs.hash_a,
    pairs.hash_b,
    pairs.distance,
    a.path as path_a,
    b.path as path_b,
    a.datasets as datasets_a,
    b.datasets as datasets_b
from pairs
join {{ ref('assets') }} as a on a.hash = pairs.hash_a
join {{ ref('assets') }} as b on b.hash = pairs.hash_b
