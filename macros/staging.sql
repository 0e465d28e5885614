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
    {{ typed('staged.' ~ sql_name(column.name), column.data_type) }} as {{ sql_name(column.name) }}{{ "," if not loop.last }}
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
    {{ typed('null', column.data_type) }} as {{ sql_name(column.name) }}{{ "," if not loop.last }}
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

{% macro typed(expression, data_type) -%}
  {#- `expression` cast to a type of the YAML, written in DuckDB's words (varchar, json,
      struct(a varchar)[], ...). -#}
  {{- adapter.dispatch('typed', 'datalake')(expression, data_type) -}}
{%- endmacro %}

{% macro duckdb__typed(expression, data_type) -%}
  {{ expression }}::{{ data_type }}
{%- endmacro %}

{#- Lists: DuckDB's list functions, Spark's array functions (macros/spark.sql). -#}

{% macro sorted_list(column) -%}
  {#- Aggregate: the column's values but nulls, sorted, as a list (empty for none). -#}
  {{- adapter.dispatch('sorted_list', 'datalake')(column) -}}
{%- endmacro %}

{% macro duckdb__sorted_list(column) -%}
  coalesce(list({{ column }} order by {{ column }}) filter (where {{ column }} is not null), [])
{%- endmacro %}

{% macro sorted_distinct_join(expression, separator) -%}
  {#- Aggregate: the distinct values, sorted, joined by `separator`. -#}
  {{- adapter.dispatch('sorted_distinct_join', 'datalake')(expression, separator) -}}
{%- endmacro %}

{% macro duckdb__sorted_distinct_join(expression, separator) -%}
  string_agg(distinct {{ expression }}, {{ sql_string(separator) }} order by {{ expression }})
{%- endmacro %}

{% macro list_length(list) -%}
  {{- adapter.dispatch('list_length', 'datalake')(list) -}}
{%- endmacro %}

{% macro duckdb__list_length(list) -%}
  len({{ list }})
{%- endmacro %}

{% macro list_join(list, separator) -%}
  {{- adapter.dispatch('list_join', 'datalake')(list, separator) -}}
{%- endmacro %}

{% macro duckdb__list_join(list, separator) -%}
  array_to_string({{ list }}, {{ sql_string(separator) }})
{%- endmacro %}

{% macro list_has(list, value) -%}
  {{- adapter.dispatch('list_has', 'datalake')(list, value) -}}
{%- endmacro %}

{% macro duckdb__list_has(list, value) -%}
  list_contains({{ list }}, {{ value }})
{%- endmacro %}

{% macro list_transform(list, name, expression) -%}
  {#- Each element of `list`, named `name`, as `expression` makes it. -#}
  {{- adapter.dispatch('list_transform', 'datalake')(list, name, expression) -}}
{%- endmacro %}

{% macro duckdb__list_transform(list, name, expression) -%}
  list_transform({{ list }}, lambda {{ name }}: {{ expression }})
{%- endmacro %}

{% macro list_sorted_distinct(list) -%}
  {{- adapter.dispatch('list_sorted_distinct', 'datalake')(list) -}}
{%- endmacro %}

{% macro duckdb__list_sorted_distinct(list) -%}
  list_sort(list_distinct({{ list }}))
{%- endmacro %}

{% macro list_total(list) -%}
  {#- The sum of a list of numbers (null or 0 for an empty one). -#}
  {{- adapter.dispatch('list_total', 'datalake')(list) -}}
{%- endmacro %}

{% macro duckdb__list_total(list) -%}
  list_sum({{ list }})
{%- endmacro %}

{% macro list_item(list, n) -%}
  {#- The `n`th element of a list (1 the first). -#}
  {{- adapter.dispatch('list_item', 'datalake')(list, n) -}}
{%- endmacro %}

{% macro duckdb__list_item(list, n) -%}
  {{ list }}[{{ n }}]
{%- endmacro %}

{% macro percentiles_disc(expression) -%}
  {#- Aggregate: the 5th, 50th and 95th nearest-rank percentiles, as a list (values that occur). -#}
  {{- adapter.dispatch('percentiles_disc', 'datalake')(expression) -}}
{%- endmacro %}

{% macro duckdb__percentiles_disc(expression) -%}
  quantile_disc({{ expression }}, [0.05, 0.5, 0.95])
{%- endmacro %}

{% macro value_counts(expression) -%}
  {#- Aggregate: a map of each value (but null) to its count. -#}
  {{- adapter.dispatch('value_counts', 'datalake')(expression) -}}
{%- endmacro %}

{% macro duckdb__value_counts(expression) -%}
  histogram({{ expression }})
{%- endmacro %}

{% macro empty_counts() -%}
  {#- An empty map of value_counts. -#}
  {{- adapter.dispatch('empty_counts', 'datalake')() -}}
{%- endmacro %}

{% macro duckdb__empty_counts() -%}
  map()
{%- endmacro %}
