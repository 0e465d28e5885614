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
