{#- One row per processed upload: who, when, what it brought. -#}
select * from {{ ref('stg_lake__uploads') }}
