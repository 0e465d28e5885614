{#- Fails for every task row whose required meta fields are missing or outside the allowed values
    of config/schema.yaml (read through `rules`), and for rows of tasks no longer registered.
    One failing row per task, field and bad value, with how many rows carry it. -#}
{% test task_meta_rules(model, rules) %}
{%- set checks = [] -%}
{%- if execute -%}
    {%- set columns = adapter.get_columns_in_relation(model) | map(attribute='name') | list -%}
    {%- set found = run_query("select task, field, to_json(list(allowed_value) filter (where allowed_value is not null))::varchar "
                              ~ "from " ~ rules ~ " group by all order by all") -%}
    {%- for row in found.rows -%}
        {%- do checks.append({'task': row[0], 'field': row[1], 'allowed': fromjson(row[2]) if row[2] else []}) -%}
    {%- endfor -%}
{%- endif %}
with registered as (select distinct task from {{ rules }})
select task, '(task)' as field, task as bad_value, count(*) as n_rows,
       'task is not registered in config/schema.yaml' as problem
from {{ model }}
where task != 'raw' and task not in (select task from registered)
group by all
{%- for check in checks %}
union all
select task, {{ sql_string(check.field) }} as field,
       {% if check.field in columns %}{{ sql_name(check.field) }}::varchar{% else %}null::varchar{% endif %} as bad_value,
       count(*) as n_rows,
       {{ sql_string('allowed: ' ~ check.allowed | join(', ') if check.allowed else 'required') }} as problem
from {{ model }}
where task = {{ sql_string(check.task) }}
  and (
    {%- if check.field in columns %}
      {{ sql_name(check.field) }} is null
      {%- if check.allowed %} or {{ sql_name(check.field) }}::varchar not in ({{ string_list(check.allowed) }}){% endif %}
    {%- else %} true {%- endif %}
  )
group by all
{%- endfor %}
{% endtest %}
