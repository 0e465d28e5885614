{#- Helpers over the lake's files. The lake folder is DATALAKE_HOME. -#}

{% macro lake_path(relative) -%}
  {{- env_var('DATALAKE_HOME', 'lake') ~ '/' ~ relative -}}
{%- endmacro %}

{% macro lake_files(relative_glob) -%}
  {#- The files matching a glob under the lake, as a list (empty at parse time). -#}
  {%- if not execute -%}{{ return([]) }}{%- endif -%}
  {%- set result = run_query("select file from glob(" ~ dbt.string_literal(lake_path(relative_glob)) ~ ") order by file") -%}
  {{- return(result.columns[0].values() | list) -}}
{%- endmacro %}

{% macro source_columns(relation) -%}
  {#- Column names of a source (an external read_parquet) as DuckDB sees them. -#}
  {%- if not execute -%}{{ return([]) }}{%- endif -%}
  {%- set result = run_query("describe select * from " ~ relation) -%}
  {{- return(result.columns[0].values() | list) -}}
{%- endmacro %}

{% macro string_list(values) -%}
  {%- for v in values -%}{{ dbt.string_literal(v) }}{{ ", " if not loop.last }}{%- endfor -%}
{%- endmacro %}

{% macro only_new_files(relative_glob) -%}
  {#- In an incremental run of a model with a `_file` column: drop rows of files that are gone
      and return the filter that reads only files the model has not seen. Set work in DuckDB. -#}
  {%- if is_incremental() and execute -%}
    {%- set on_disk = "select file from glob(" ~ dbt.string_literal(lake_path(relative_glob)) ~ ")" -%}
    {%- do run_query("delete from " ~ this ~ " where _file not in (" ~ on_disk ~ ")") -%}
    {%- set new_files = run_query(on_disk ~ " where file not in (select distinct _file from " ~ this ~ ") order by 1")
                          .columns[0].values() | list -%}
    where {% if new_files %}_file in ({{ string_list(new_files) }}){% else %}false{% endif %}
  {%- endif -%}
{%- endmacro %}
