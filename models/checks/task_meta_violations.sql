{#- Every broken rule of config/schema.yaml in the catalog (macros/rules.sql). -#}
{{ task_meta_violations(ref('stg_lake__task_rules'), ref('catalog')) }}
