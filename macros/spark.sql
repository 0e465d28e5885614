{#- The Spark side of the macros that differ by engine (dbt-spark; `dbt build --target spark`).
    Spark builds every model whole (lake_incremental): each build reads every lake file, so the
    records of macros/lake.sql stand for a full build. Lake paths reach Spark as globs in a
    backquoted name (spark_lake_glob); the file names it gives back are URIs, made plain paths
    (spark_local_path) as DuckDB gives them, so both engines' marts hold the same values. -#}

{% macro spark_lake_glob(relative_glob) -%}
  {#- The lake folder, its glob characters escaped, then `relative_glob`, for a Spark path. -#}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- set lake = graph.sources['source.' ~ project_name ~ '.lake.catalog'].config.lake -%}
  {{- return(spark_glob_escape(lake) ~ '/' ~ relative_glob) -}}
{%- endmacro %}

{% macro spark_glob_escape(path) -%}
  {#- `path` with the characters of Spark's (Hadoop's) globs escaped. -#}
  {%- set escaped = namespace(path=path) -%}
  {%- for c in ['\\', '{', '}', '[', ']', '*', '?', ','] -%}
    {%- set escaped.path = escaped.path | replace(c, '\\' ~ c) -%}
  {%- endfor -%}
  {{- return(escaped.path) -}}
{%- endmacro %}

{% macro spark_files(relative_glob) -%}
  {#- A backquoted Spark path of the lake files matching a glob, or config/schema.yaml: a glob
      matching nothing stops Spark, so the rules file (always there) is matched too. -#}
  `{{ (spark_lake_glob('{' ~ relative_glob ~ ',config/schema.yaml}')) | replace('`', '``') }}`
{%- endmacro %}

{% macro spark_local_path(uri_column) -%}
  {#- A file URI Spark gives (file:/a%20b/c) as the plain path DuckDB gives (/a b/c). -#}
  try_url_decode(replace(regexp_replace({{ uri_column }}, '^file:(//)?', ''), '+', '%2B'))
{%- endmacro %}

{% macro spark__lake_file_names(relative_glob) -%}
  (select path from (select {{ spark_local_path('path') }} as path from binaryFile.{{ spark_files(relative_glob) }})
   where not endswith(path, '/config/schema.yaml'))
{%- endmacro %}

{% macro spark__lake_files(relative_glob) -%}
  {%- if not execute -%}{{ return([]) }}{%- endif -%}
  {%- set query = "select path from " ~ spark__lake_file_names(relative_glob) ~ " as files order by path" -%}
  {{- return(run_query(query).columns[0].values() | list) -}}
{%- endmacro %}

{% macro spark__read_lake_rules() -%}
  {%- set query = "select cast(content as string) from binaryFile.`" ~ spark_lake_glob('config/schema.yaml') | replace('`', '``') ~ "`" -%}
  {{- return(run_query(query).columns[0].values()[0]) -}}
{%- endmacro %}

{% macro spark__in_hidden_collection_folder(path_column) -%}
  {{ path_column }} rlike '/collections/([.][^/]*/[^/]*|[^/]*/[.][^/]*)/[^/]*$'
{%- endmacro %}

{% macro spark__source_columns(relation) -%}
  {%- if not execute -%}{{ return([]) }}{%- endif -%}
  {{- return(run_query("describe query select * from " ~ relation).columns[0].values() | list) -}}
{%- endmacro %}

{% macro spark__sql_string(value) -%}
  {#- Spark's string literals escape with a backslash (two quotes in a row are two literals). -#}
  {{- "'" ~ (value | string | replace('\\', '\\\\') | replace("'", "\\'")) ~ "'" -}}
{%- endmacro %}

{% macro spark__sql_name(name) -%}
  {{- '`' ~ (name | string | replace('`', '``')) ~ '`' -}}
{%- endmacro %}

{% macro spark__ledger_rows(files) -%}
  (select *, {{ spark_local_path('_metadata.file_path') }} as filename
   from parquet.{{ spark_file_list(files) }}) as ledger
{%- endmacro %}

{% macro spark__in_database(schema, name) -%}
  {{- return(execute and adapter.get_relation(database=none, schema=schema, identifier=name) is not none) -}}
{%- endmacro %}

{% macro spark__record_build_changes() -%}
  {#- Run here, statement by statement (Spark takes one at a time); the hook itself is empty. -#}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- set statements = [
      "create database if not exists lake_build",
      "create table if not exists lake_build.builds (build bigint, started_at timestamp, full_build boolean, "
      ~ "invocation_id string) using parquet",
      "insert into lake_build.builds select coalesce(max(build), 0) + 1, current_timestamp(), true, "
      ~ sql_string(invocation_id) ~ " from lake_build.builds",
      "drop table if exists lake_build.read_files",
      "create table lake_build.read_files using parquet as " ~ spark_read_files(),
      "drop table if exists lake_build.changed_files",
      "create table lake_build.changed_files using parquet as "
      ~ "select read_by, _file, num_rows, cast(0 as bigint) as held_rows from lake_build.read_files",
      "create table if not exists lake_build.rules (content string) using parquet",
      "drop table if exists lake_build.rules_changed",
      "create table lake_build.rules_changed using parquet as select true as changed",
  ] -%}
  {%- for statement in statements -%}{%- do run_query(statement) -%}{%- endfor -%}
{%- endmacro %}

{% macro spark_read_files() -%}
  {#- Every file each `read_by` kind stands for, with its rows. -#}
  {%- for read_by, files in read_files_globs().items() if lake_files(files.glob) %}
  select {{ sql_string(read_by) }} as read_by, _file, count(*) as num_rows
  from (select {{ spark_local_path('_metadata.file_path') }} as _file
        from parquet.`{{ spark_lake_glob(files.glob) | replace('`', '``') }}`)
  {%- if read_by == 'collection_members' %} where not {{ in_hidden_collection_folder('_file') }}{% endif %}
  group by _file
  union all
  {%- endfor %}
  select cast(null as string) as read_by, cast(null as string) as _file, cast(null as bigint) as num_rows where false
{%- endmacro %}

{% macro spark__record_checked_rules(results) -%}
  {%- if execute and results | selectattr('status', 'in', ['error', 'fail', 'skipped']) | list | length == 0 -%}
    {%- do run_query("insert overwrite table lake_build.rules select " ~ sql_string(read_lake_rules())) -%}
  {%- endif -%}
{%- endmacro %}

{% macro spark__typed(expression, data_type) -%}
  cast({{ expression }} as {{ spark_type(data_type) }})
{%- endmacro %}

{% macro spark_type(data_type) -%}
  {#- A type in DuckDB's words in Spark's: varchar and json are strings, `T[]` an array<T>,
      struct(a T, ...) a struct<a T, ...>. -#}
  {%- set type = data_type | lower | replace('varchar', 'string') | replace('json', 'string') | replace('"', '`') -%}
  {%- if type.endswith('[]') -%}{%- set type = 'array<' ~ type[:-2] ~ '>' -%}{%- endif -%}
  {{- return(type | replace('struct(', 'struct<') | replace(')>', '>>')) -}}
{%- endmacro %}

{% macro spark_file_list(files) -%}
  {#- A backquoted Spark path naming exactly `files` (absolute paths, as lake_files gives them). -#}
  {%- set escaped = [] -%}
  {%- for file in files -%}{%- do escaped.append(spark_glob_escape(file[1:])) -%}{%- endfor -%}
  `{{ ('/{' ~ escaped | join(',') ~ '}') | replace('`', '``') }}`
{%- endmacro %}

{% macro spark__parquet_rows(files, file_column) -%}
  (select *
   {%- if file_column %}, {{ spark_local_path('_metadata.file_path') }} as {{ sql_name(file_column) }},
   _metadata.row_index as file_row_number{% endif %}
   from parquet.{{ spark_file_list(files) }}) as rows
{%- endmacro %}

{% macro spark__star_except(columns) -%}
  * except ({% for column in columns %}{{ sql_name(column) }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{% macro spark__json_rows(name, relative_glob, computed, objects) -%}
  {%- set fields = [] -%}
  {%- for column in declared_columns() if column.name not in computed -%}
    {%- set type = spark_type(column.data_type) -%}
    {%- do fields.append(sql_name(column.name) ~ ' ' ~ (type if '<' in type else 'string')) -%}
  {%- endfor -%}
  {%- for name in objects -%}{%- do fields.append(sql_name(name) ~ ' string') -%}{%- endfor -%}
  (select record.*, filename
   from (select from_json(cast(content as string), {{ sql_string(fields | join(', ')) }}) as record,
                {{ spark_local_path('path') }} as filename
         from binaryFile.`{{ spark_lake_glob(relative_glob) | replace('`', '``') }}`) as files) as {{ name }}
{%- endmacro %}

{% macro spark__json_text(column) -%}
  {{ column }}
{%- endmacro %}

{% macro spark__path_segment(path_column, n) -%}
  element_at(split({{ path_column }}, '/'), {{ n }})
{%- endmacro %}

{% macro spark__regexp_replace_first(expression, pattern, group, suffix) -%}
  regexp_replace({{ expression }}, {{ sql_string(pattern) }}, {{ sql_string('$' ~ group ~ suffix) }})
{%- endmacro %}

{% macro spark__sorted_list(column) -%}
  array_sort(collect_list({{ column }}))
{%- endmacro %}

{% macro spark__sorted_distinct_join(expression, separator) -%}
  array_join(array_sort(collect_set({{ expression }})), {{ sql_string(separator) }})
{%- endmacro %}

{% macro spark__list_length(list) -%}
  size({{ list }})
{%- endmacro %}

{% macro spark__list_join(list, separator) -%}
  array_join({{ list }}, {{ sql_string(separator) }})
{%- endmacro %}

{% macro spark__list_has(list, value) -%}
  array_contains({{ list }}, {{ value }})
{%- endmacro %}

{% macro spark__list_transform(list, name, expression) -%}
  transform({{ list }}, {{ name }} -> {{ expression }})
{%- endmacro %}

{% macro spark__list_sorted_distinct(list) -%}
  array_sort(array_distinct({{ list }}))
{%- endmacro %}

{% macro spark__list_total(list) -%}
  aggregate({{ list }}, cast(0 as bigint), (total, n) -> total + n)
{%- endmacro %}

{% macro spark__list_item(list, n) -%}
  element_at({{ list }}, {{ n }})
{%- endmacro %}

{% macro spark__percentiles_disc(expression) -%}
  array(
    {%- for p in [0.05, 0.5, 0.95] -%}
    cast(percentile_disc({{ p }}) within group (order by {{ expression }}) as bigint){{ ", " if not loop.last }}
    {%- endfor -%})
{%- endmacro %}

{% macro spark__value_counts(expression) -%}
  map_from_entries(transform(array_sort(array_distinct(collect_list({{ expression }}))),
                             v -> struct(v, cast(size(filter(collect_list({{ expression }}), w -> w = v)) as bigint))))
{%- endmacro %}

{% macro spark__empty_counts() -%}
  cast(map() as map<string, bigint>)
{%- endmacro %}
