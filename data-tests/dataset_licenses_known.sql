{#- Warns (never fails the build) for each dataset with no license, or one the seed `licenses`
    does not list (other than `other`, which names its own): set one in config/schema.yaml for its
    provider, or upload with license= (--license). -#}
{{ config(severity='warn', store_failures=true) }}
select
    provider,
    dataset,
    license,
    case when license is null then 'no license' else 'unknown license' end as problem
from {{ ref('dataset_licenses') }}
where license is null
   or (license <> 'other' and license not in (select id from {{ ref('licenses') }}))
