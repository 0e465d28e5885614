{# One row per part file the catalog holds, with its partition, upload, rows and the number of its
   last row in its row ids (more than num_rows - 1 in a part a retraction rewrote): what builds
   compare with the lake's part files, and what partitions and collection_members count from.
   Incremental: the rows of the part files this build read or dropped. #}
{{ config(materialized=lake_incremental(), incremental_strategy='lake_files', read_by='catalog') }}

select
    _file,
    provider || '/' || dataset || '/' || task || '/' || variant as partition_key,
    provider,
    dataset,
    task,
    variant,
    {{ part_path_field('_file', 'upload_id') }} as upload_id,
    count(*) as num_rows,
    max(cast(split_part(row_id, ':', 2) as bigint)) as last_row_number,
    max(_uploaded_at) as last_upload_at
from {{ ref('catalog') }}
{%- if is_incremental() %}
where _build = {{ this_build() }}
{%- endif %}
group by all
