{#- Helpers over the lake's files. The lake folder is set once, in the `lake` source
    (models/staging/lake/_lake__sources.yml, from DATALAKE_HOME); in SQL every lake path starts
    with its `lake_glob`, where the folder is escaped once, so it may have any name.
    Strings and names go into SQL through sql_string and sql_name, which escape any text. -#}

{% macro sql_string(value) -%}
  {#- A SQL string literal of any text (dbt.string_literal leaves quotes as they are). -#}
  {{- "'" ~ (value | string | replace("'", "''")) ~ "'" -}}
{%- endmacro %}

{% macro sql_name(name) -%}
  {#- An identifier of any text, quoted (adapter.quote leaves double quotes as they are). -#}
  {{- '"' ~ (name | string | replace('"', '""')) ~ '"' -}}
{%- endmacro %}

{% macro string_list(values) -%}
  {%- for v in values -%}{{ sql_string(v) }}{{ ", " if not loop.last }}{%- endfor -%}
{%- endmacro %}

{% macro lake_glob(relative_glob) -%}
  {#- The files under the lake matching a glob, as a SQL string (the lake folder escaped in the
      `lake` source's config, models/staging/lake/_lake__sources.yml; not known at parse time). -#}
  {%- if not execute -%}{{ return("''") }}{%- endif -%}
  {%- set lake = graph.sources['source.' ~ project_name ~ '.lake.catalog'].config.lake_glob -%}
  {{- "'" ~ lake ~ '/' ~ relative_glob ~ "'" -}}
{%- endmacro %}

{% macro in_hidden_collection_folder(path_column) -%}
  {#- Whether a collection version's file is in a folder being written (name or version starting with `.`). -#}
  regexp_matches({{ path_column }}, '/collections/([.][^/]*/[^/]*|[^/]*/[.][^/]*)/[^/]*$')
{%- endmacro %}

{% macro lake_files(relative_glob) -%}
  {#- The files matching a glob under the lake, as a list (empty at parse time). -#}
  {%- if not execute -%}{{ return([]) }}{%- endif -%}
  {%- set result = run_query("select file from glob(" ~ lake_glob(relative_glob) ~ ") order by file") -%}
  {{- return(result.columns[0].values() | list) -}}
{%- endmacro %}

{% macro source_columns(relation) -%}
  {#- Column names of a source (an external read_parquet) as DuckDB sees them. -#}
  {%- if not execute -%}{{ return([]) }}{%- endif -%}
  {%- set result = run_query("describe select * from " ~ relation) -%}
  {{- return(result.columns[0].values() | list) -}}
{%- endmacro %}

{% macro unused_name(name, taken) -%}
  {#- `name`, or `name_1`, `name_2`, ... : the first not in `taken` (lowercase names). -#}
  {%- for n in range(taken | length + 1) -%}
    {%- set candidate = name ~ ('_' ~ n if n else '') -%}
    {%- if candidate not in taken -%}{{ return(candidate) }}{%- endif -%}
  {%- endfor -%}
{%- endmacro %}

{% macro part_path_field(file_column, field) -%}
  {#- provider, dataset, task, variant or upload_id, from a part's path
      .../provider=P/dataset=D/task=T/variant=V/part-<upload_id>.parquet -#}
  regexp_extract({{ sql_name(file_column) }},
      '/provider=([^/]*)/dataset=([^/]*)/task=([^/]*)/variant=([^/]*)/part-([^/]*)\.parquet$',
      {{ ["provider", "dataset", "task", "variant", "upload_id"].index(field) + 1 }})
{%- endmacro %}

{% macro refuse_file_row_number_column() -%}
  {#- Stop the build, naming the part files with a column `file_row_number`, which the build's
      reader adds itself (DuckDB cannot rename it). -#}
  {%- set found = run_query("select distinct file_name from parquet_schema(" ~ lake_glob(catalog_parts())
                            ~ ") where lower(name) = 'file_row_number' order by 1").columns[0].values() | list -%}
  {%- do exceptions.raise_compiler_error(
        "part file(s) with a column named file_row_number, which the database build reserves for the row "
        ~ "number in the part: " ~ found | join(", ") ~ ". Rewrite them without that column (or rename it), "
        ~ "or remove them from the catalog.") -%}
{%- endmacro %}

{#- The incremental models (catalog, uploads) read the files recorded at the start of the run by
    record_read_files (on-run-start), not what is on disk when each model runs: files that land or
    go meanwhile wait for the next build, and the catalog's test compares it with the same record. -#}

{% macro catalog_parts() -%}
  {#- The catalog's part files: part-<upload_id>.parquet in the partition folders, nothing else. -#}
  {{- return('catalog/provider=*/dataset=*/task=*/variant=*/part-*.parquet') -}}
{%- endmacro %}

{% macro read_files_globs() -%}
  {{- return({'catalog': catalog_parts(), 'uploads': 'ledger/uploads/*.parquet'}) -}}
{%- endmacro %}

{% macro record_read_files() -%}
  {#- One row per file each incremental model reads (`read_by`), with its rows from its parquet footer. -#}
  create schema if not exists lake_build;
  create or replace table lake_build.read_files as
  {%- for model, glob in read_files_globs().items() if lake_files(glob) %}
  select {{ sql_string(model) }} as read_by, file_name as _file, num_rows::bigint as num_rows
  from parquet_file_metadata({{ lake_glob(glob) }})
  union all
  {%- endfor %}
  select null::varchar as read_by, null::varchar as _file, null::bigint as num_rows where false
{%- endmacro %}

{% macro read_files(model_name) -%}
  {#- The recorded files of a model: _file, num_rows. -#}
  (select _file, num_rows from lake_build.read_files where read_by = {{ sql_string(model_name) }})
{%- endmacro %}

{% macro files_to_read() -%}
  {#- The filter of a model with a `_file` column that reads only the recorded files whose rows it
      does not hold exactly: every file in a full build; new files, and any whose rows changed, in an
      incremental one. Computed when the model runs; the rows it replaces go in the strategy below. -#}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- if adapter.get_relation(this.database, 'lake_build', 'read_files') is none -%}
    {{- return('where false') -}}  {#- a compile outside any run on a database built before the record -#}
  {%- endif -%}
  {%- set query -%}
    select files._file from {{ read_files(this.identifier) }} as files
    {%- if is_incremental() %}
    left join (select _file, count(*) as n from {{ this }} group by _file) as held using (_file)
    where files.num_rows != coalesce(held.n, 0)
    {%- else %}
    where files.num_rows > 0
    {%- endif %}
    order by 1
  {%- endset -%}
  {%- set files = run_query(query).columns[0].values() | list -%}
  where {% if files %}_file in ({{ string_list(files) }}){% else %}false{% endif %}
{%- endmacro %}

{% macro get_incremental_lake_files_sql(arg_dict) -%}
  {#- Incremental strategy `lake_files` (with files_to_read): the rows of files that are read again,
      gone, or empty now give way to the rows just read. Columns are matched by name. -#}
  {%- set target = arg_dict['target_relation'] -%}
  {%- set new_rows = arg_dict['temp_relation'] -%}
  delete from {{ target }}
  where _file in (select _file from {{ new_rows }})
     or _file not in (select _file from {{ read_files(target.identifier) }} where num_rows > 0);
  insert into {{ target }} by name select * from {{ new_rows }}
{%- endmacro %}

{% macro duckdb__alter_relation_add_remove_columns(relation, add_columns, remove_columns) -%}
  {#- dbt-duckdb's, with column names of any text (a user's column may hold a double quote). -#}
  {%- for column in add_columns or [] -%}
    {%- do run_query("alter table " ~ relation ~ " add column " ~ sql_name(column.name) ~ " " ~ column.data_type) -%}
  {%- endfor -%}
  {%- for column in remove_columns or [] -%}
    {%- do run_query("alter table " ~ relation ~ " drop column " ~ sql_name(column.name)) -%}
  {%- endfor -%}
{%- endmacro %}
