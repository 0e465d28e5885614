{#- Fails for every row of task_meta_violations: catalog rows whose required meta fields are missing
    or outside the allowed values of config/schema.yaml, and rows of tasks no longer registered.
    One failing row per task, field and bad value, with how many rows carry it. -#}
select * from {{ ref('task_meta_violations') }}
