{#- One row per (task, required meta field, allowed value) of config/schema.yaml, as this build read
    the file (lake_rules, macros/rules.sql); allowed_value is null for a field that takes any value.
    Tasks added with `datalake config task create` are enforced without editing any model. The view
    holds the values, not the file: it shows the rules as the last build saw them. -#}
-- depends_on: {{ source('lake', 'rules') }}
{%- set rows = [] %}
{%- for task, rule in lake_rules().tasks.items() %}
  {%- for field in rule.required_fields %}
    {%- for value in rule.allowed_values.get(field) or [none] %}
      {%- do rows.append([task, field, value]) %}
    {%- endfor %}
  {%- endfor %}
{%- endfor %}
select
    cast(task as {{ dbt.type_string() }}) as task,
    cast(field as {{ dbt.type_string() }}) as field,
    cast(allowed_value as {{ dbt.type_string() }}) as allowed_value
from (values
    {%- for row in rows %}
    ({% for value in row %}{{ 'null' if value is none else sql_string(value) }}{{ ', ' if not loop.last }}{% endfor %}),
    {%- endfor %}
    (null, null, null)
) as t(task, field, allowed_value)
where task is not null
