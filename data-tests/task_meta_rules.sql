{#- Fails for every broken rule of config/schema.yaml among the catalog rows this build added:
    required meta fields missing or outside the allowed values, tasks no longer registered. All
    rows are checked when the rules changed since the last run without failures, and in a
    full build or check.
    One failing row per task, field and bad value, with how many rows carry it. -#}
{{ config(store_failures=true) }}
{%- set every_row = checking_every_row() or (execute and
      run_query("select changed from lake_build.rules_changed").columns[0].values()[0]) %}
{%- set rows = "true" if every_row else "_build = " ~ this_build() %}
{{ task_meta_violations(ref('stg_lake__task_rules'), ref('catalog'), rows) }}
