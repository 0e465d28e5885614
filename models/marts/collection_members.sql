{# One row per member of a live collection version, linked to its asset and to the catalog row it
   was frozen from; `in_catalog` tells whether that row is still in the catalog. #}
select
    members.collection_key || ':' || members.member_index as member_id,
    members.*,
    members.row_id in (select row_id from {{ ref('catalog') }}) as in_catalog
from {{ ref('stg_lake__collection_members') }} as members
