{% macro task_meta_fields(rules, model) -%}
  {#- Every meta field the rules (stg_lake__task_rules) require, mapped to whether `model` has a
      column of that name: {field: true or false}. Read from the database when the model runs
      (empty before the rules are built); unit tests give it instead (`overrides`). -#}
  {%- set found = {} -%}
  {%- if execute and load_relation(rules) is not none -%}
    {%- set columns = adapter.get_columns_in_relation(model) | map(attribute='name') | list -%}
    {%- for field in run_query("select distinct field from " ~ rules ~ " order by 1").columns[0].values() -%}
      {%- do found.update({field: field in columns}) -%}
    {%- endfor -%}
  {%- endif -%}
  {{- return(found) -}}
{%- endmacro %}

{% macro task_meta_violations(rules, catalog, rows='true') -%}
  {#- One row per task, required meta field and bad value in the catalog, with how many rows carry it
    and the rule broken; and one per task the rules do not register (but `raw`). Empty when the
    catalog keeps config/schema.yaml; the data test task_meta_rules fails the build otherwise.
    The catalog is read twice, the task column alone for unregistered tasks, and the rows of
    registered tasks folded per distinct meta values (meta is set per upload, so they are few)
    before each value is checked. `rows`, a SQL condition, narrows the catalog rows checked. -#}
{%- set fields = task_meta_fields(rules, catalog) -%}
with rules as (
    select task, field,
           {{ sorted_list('allowed_value') }} as allowed
    from {{ rules }}
    group by task, field
),

unregistered as (
    select task, '(task)' as field, task as bad_value, count(*) as n_rows,
           'task is not registered in config/schema.yaml' as problem
    from {{ catalog }} as catalog
    where task != 'raw' and task not in (select task from rules) and {{ rows }}
    group by task
)
{%- if fields %},

meta_values as (
    {#- a field the catalog has no column for is null in every row #}
    select
        task,
        {%- for field, in_catalog in fields.items() %}
        {{ typed(sql_name(field) if in_catalog else 'null', 'varchar') }} as {{ sql_name(field) }},
        {%- endfor %}
        count(*) as n_rows
    from {{ catalog }} as catalog
    where task in (select task from rules) and {{ rows }}
    group by all
),

checked as (
    select * from meta_values
    unpivot include nulls (value for field in ({% for field in fields %}{{ sql_name(field) }}{{ ", " if not loop.last }}{% endfor %}))
),

broken as (
    select
        task,
        field,
        value as bad_value,
        {{ typed('sum(n_rows)', 'bigint') }} as n_rows,
        if({{ list_length('allowed') }} > 0, 'allowed: ' || {{ list_join('allowed', ', ') }}, 'required') as problem
    from checked
    inner join rules using (task, field)
    where value is null or ({{ list_length('allowed') }} > 0 and not {{ list_has('allowed', 'value') }})
    group by all
)

select * from unregistered
union all
select * from broken
{%- else %}

select * from unregistered
{%- endif %}
{%- endmacro %}

{% macro lake_rules() -%}
  {#- config/schema.yaml as dbt's fromyaml reads it, for the models that hold its values
      (stg_lake__task_rules, stg_lake__provider_licenses): a mapping with `providers` and `tasks`,
      each task's `required_fields` a list and `allowed_values` a mapping of lists (empty at parse
      time). A file not so stops the build, naming where. datalake checks every rule of the file
      with its own parser before each build it runs (`datalake db update`, client.build_db). -#}
  {%- if not execute -%}{{ return({'providers': {}, 'tasks': {}}) }}{%- endif -%}
  {%- set rules = fromyaml(read_lake_rules()) -%}
  {%- if rules is not mapping -%}{{ rules_problem('the file', "must be YAML, a mapping with 'providers' and 'tasks'") }}{%- endif -%}
  {%- set tasks = rules.get('tasks') or {} -%}
  {%- if tasks is not mapping -%}{{ rules_problem('tasks', 'must be a mapping of task name to its rules') }}{%- endif -%}
  {%- set checked = {} -%}
  {%- for name, body in tasks.items() -%}
    {%- set body = body or {} -%}
    {%- set required = body.get('required_fields') or [] if body is mapping else none -%}
    {%- set allowed = body.get('allowed_values') or {} if body is mapping else none -%}
    {%- if required is none or required is string or required is not iterable or required is mapping -%}
      {{- rules_problem('tasks.' ~ name, 'must be a mapping with required_fields (a list) and allowed_values') -}}
    {%- endif -%}
    {%- if allowed is not mapping or allowed.values() | select('string') | list
           or allowed.values() | reject('iterable') | list or allowed.values() | select('mapping') | list -%}
      {{- rules_problem('tasks.' ~ name ~ '.allowed_values', 'must be a mapping of field to a list of values') -}}
    {%- endif -%}
    {%- do checked.update({name: {'required_fields': required, 'allowed_values': allowed}}) -%}
  {%- endfor -%}
  {{- return({'providers': rules.get('providers') or {}, 'tasks': checked}) -}}
{%- endmacro %}

{% macro rules_problem(where, what) -%}
  {%- do exceptions.raise_compiler_error("config/schema.yaml is invalid: " ~ where ~ " " ~ what
                                         ~ "; fix the file or restore it with `datalake init`") -%}
{%- endmacro %}

{% macro read_lake_rules() -%}
  {#- The text of config/schema.yaml (the `lake` source `rules`). -#}
  {{- return(adapter.dispatch('read_lake_rules', 'datalake')()) -}}
{%- endmacro %}

{% macro duckdb__read_lake_rules() -%}
  {{- return(run_query("select content from " ~ source('lake', 'rules')).columns[0].values()[0]) -}}
{%- endmacro %}
