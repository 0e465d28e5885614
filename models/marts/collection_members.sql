{# One row per member of a live collection version, linked to its asset and to the catalog row it
   was frozen from; `in_catalog` tells whether that row is still in the catalog: whether the
   catalog holds the part file of the row's upload with a row numbered as high (a row_id is
   `<upload_id>:<row number in its part>`; the rows a retraction took leave no member behind). A
   view, so it follows the catalog without a build touching the members. #}
{{ config(materialized='view') }}

select
    members.collection_key || ':' || members.member_index as member_id,
    members.*,
    if(members.row_id is null, null,
       coalesce(files.last_row_number >= try_cast(split_part(members.row_id, ':', 2) as bigint), false)) as in_catalog
from {{ ref('stg_lake__collection_members') }} as members
left join {{ ref('part_files') }} as files on files.upload_id = split_part(members.row_id, ':', 1)
