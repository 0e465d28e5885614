{#- A staging model's columns and types are declared once, in its YAML (name, data_type,
    description); these macros make its relation from them, with files in the lake or without. -#}

{% macro staging_select(files) -%}
  {#- Call block: the caller's query over the lake files `files` (a list), narrowed to the model's
      declared columns, each cast to its declared type; with no files, the typed empty relation of
      the same columns, so an empty lake builds too. The caller is rendered at parse time (its
      sources become the model's dependencies) and when there are files. -#}
  {%- if not execute or files -%}
select
  {%- for column in declared_columns() %}
    staged.{{ sql_name(column.name) }}::{{ column.data_type }} as {{ sql_name(column.name) }}{{ "," if not loop.last }}
  {%- endfor %}
from (
{{ caller() }}
) as staged
  {%- else -%}
{{ empty_select() }}
  {%- endif -%}
{%- endmacro %}

{% macro empty_select() -%}
  {#- No rows, with the model's declared columns and types. -#}
select
  {%- for column in declared_columns() %}
    null::{{ column.data_type }} as {{ sql_name(column.name) }}{{ "," if not loop.last }}
  {%- endfor %}
where false
{%- endmacro %}

{% macro declared_columns() -%}
  {#- The model's columns as its YAML declares them, in order; each must have a data_type. -#}
  {%- if not execute -%}{{ return([]) }}{%- endif -%}
  {%- set columns = model.columns.values() | list -%}
  {%- for column in columns if not column.data_type -%}
    {%- do exceptions.raise_compiler_error("column " ~ column.name ~ " of " ~ model.name ~ " has no data_type in its YAML") -%}
  {%- endfor -%}
  {%- if not columns -%}
    {%- do exceptions.raise_compiler_error(model.name ~ " declares no columns in its YAML") -%}
  {%- endif -%}
  {{- return(columns) -}}
{%- endmacro %}
