{#- Helpers over the lake's files. The lake folder is set once, in the `lake` source
    (models/staging/lake/_lake__sources.yml, from DATALAKE_HOME); in SQL every lake path starts
    with its `lake_glob`, where the folder is escaped once, so it may have any name.
    Strings and names go into SQL through sql_string and sql_name, which escape any text. -#}

{% macro sql_string(value) -%}
  {#- A SQL string literal of any text (dbt.string_literal leaves quotes as they are). -#}
  {{- return(adapter.dispatch('sql_string', 'datalake')(value)) -}}
{%- endmacro %}

{% macro duckdb__sql_string(value) -%}
  {{- "'" ~ (value | string | replace("'", "''")) ~ "'" -}}
{%- endmacro %}

{% macro sql_name(name) -%}
  {#- An identifier of any text, quoted (adapter.quote leaves double quotes as they are). -#}
  {{- return(adapter.dispatch('sql_name', 'datalake')(name)) -}}
{%- endmacro %}

{% macro duckdb__sql_name(name) -%}
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
  {{- adapter.dispatch('in_hidden_collection_folder', 'datalake')(path_column) -}}
{%- endmacro %}

{% macro duckdb__in_hidden_collection_folder(path_column) -%}
  regexp_matches({{ path_column }}, '/collections/([.][^/]*/[^/]*|[^/]*/[.][^/]*)/[^/]*$')
{%- endmacro %}

{% macro lake_files(relative_glob) -%}
  {#- The files matching a glob under the lake, as a list (empty at parse time). -#}
  {{- return(adapter.dispatch('lake_files', 'datalake')(relative_glob)) -}}
{%- endmacro %}

{% macro duckdb__lake_files(relative_glob) -%}
  {%- if not execute -%}{{ return([]) }}{%- endif -%}
  {%- set result = run_query("select file from glob(" ~ lake_glob(relative_glob) ~ ") order by file") -%}
  {{- return(result.columns[0].values() | list) -}}
{%- endmacro %}

{% macro lake_file_names(relative_glob) -%}
  {#- The files matching a glob under the lake, as a subquery of their names (read when it runs). -#}
  {{- adapter.dispatch('lake_file_names', 'datalake')(relative_glob) -}}
{%- endmacro %}

{% macro duckdb__lake_file_names(relative_glob) -%}
  (select file from glob({{ lake_glob(relative_glob) }}))
{%- endmacro %}

{% macro source_columns(relation) -%}
  {#- Column names of a source (an external read_parquet) as DuckDB sees them. -#}
  {{- return(adapter.dispatch('source_columns', 'datalake')(relation)) -}}
{%- endmacro %}

{% macro duckdb__source_columns(relation) -%}
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

{% macro parquet_rows(files, file_column=none) -%}
  {#- The rows of parquet files (catalog parts, members files), columns matched by name (partition
      folders are not read as columns); with `file_column`, each row's file in that column and its
      number in the file in `file_row_number`. -#}
  {{- adapter.dispatch('parquet_rows', 'datalake')(files, file_column) -}}
{%- endmacro %}

{% macro duckdb__parquet_rows(files, file_column) -%}
  read_parquet({{ file_list(files) }}, hive_partitioning=false, union_by_name=true
  {%- if file_column %}, filename={{ sql_string(file_column) }}, file_row_number=true{% endif %})
{%- endmacro %}

{% macro star_except(columns) -%}
  {#- Every column but `columns` (a list of names). -#}
  {{- adapter.dispatch('star_except', 'datalake')(columns) -}}
{%- endmacro %}

{% macro duckdb__star_except(columns) -%}
  * exclude ({% for column in columns %}{{ sql_name(column) }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{% macro part_path_field(file_column, field) -%}
  {#- provider, dataset, task, variant or upload_id, from a part's path
      .../provider=P/dataset=D/task=T/variant=V/part-<upload_id>.parquet -#}
  regexp_extract({{ sql_name(file_column) }},
      '/provider=([^/]*)/dataset=([^/]*)/task=([^/]*)/variant=([^/]*)/part-([^/]*)\.parquet$',
      {{ ["provider", "dataset", "task", "variant", "upload_id"].index(field) + 1 }})
{%- endmacro %}

{% macro refuse_file_row_number_column(files) -%}
  {#- Stop the build, naming the part files among `files` with a column `file_row_number`, which the
      build's reader adds itself (DuckDB cannot rename it). -#}
  {%- set found = run_query("select distinct file_name from parquet_schema(" ~ file_list(files)
                            ~ ") where lower(name) = 'file_row_number' order by 1").columns[0].values() | list -%}
  {%- do exceptions.raise_compiler_error(
        "part file(s) with a column named file_row_number, which the database build reserves for the row "
        ~ "number in the part: " ~ found | join(", ") ~ ". Rewrite them without that column (or rename it), "
        ~ "or remove them from the catalog.") -%}
{%- endmacro %}

{#- How a build stays proportional to what changed. At its start, record_build_changes (on-run-start)
    records in the schema lake_build which lake files the build reads and what they change:

    - builds (build, started_at, full_build, invocation_id): one row per build of this database
      file; the catalog's column `_build` is the build that read the row, so a build finds its
      rows cheaply;
    - read_files (read_by, _file, num_rows): every file an incremental model reads, with its rows
      from its parquet footer; files that land or go while the build runs wait for the next one;
    - changed_files (read_by, _file, num_rows, held_rows): those whose rows the database does not
      hold exactly (new, replaced, or gone: num_rows 0); in a full build, all of them;
    - touched_partitions (partition_key) and touched_hashes (hash, a view read after the models
      ran): the partitions and assets whose rows the changed part files add or drop, and the
      assets new ledger files describe; the aggregating marts replace only their rows;
    - touched_stats_partitions (a view read after the models ran): touched_partitions, and the
      partitions of new uploads (one whose rows were all duplicates writes no part file) and of
      the assets new fingerprints and near pairs describe: the rows dataset_stats replaces;
    - rules (content): config/schema.yaml as the last build without failures checked it
      (record_checked_rules, on-run-end), and rules_changed (changed): whether it differs now.

    Models reading lake files read `files_read_by(kind)` with the strategy `lake_files`; aggregating
    marts use the strategy `touched_keys`. Tests check only the changed rows (their `where` config), except in
    a full build and a full check (`--vars '{check_all: true}'`, what `datalake db check` runs). -#}

{% macro json_rows(name, relative_glob, computed=[], objects=[]) -%}
  {#- The rows of the `lake` source `name`, JSON files matching `relative_glob`, one row per file
      with its keys as columns (and the file in `filename`). Spark reads the keys the model
      declares (but those it computes, `computed`), each as text (`objects` too, as JSON text) but
      lists and structs; the model's types come from its YAML. -#}
  {{- adapter.dispatch('json_rows', 'datalake')(name, relative_glob, computed, objects) -}}
{%- endmacro %}

{% macro duckdb__json_rows(name, relative_glob, computed, objects) -%}
  {{ source('lake', name) }}
{%- endmacro %}

{% macro json_text(column) -%}
  {#- A JSON object column of json_rows as JSON text. -#}
  {{- adapter.dispatch('json_text', 'datalake')(column) -}}
{%- endmacro %}

{% macro duckdb__json_text(column) -%}
  to_json({{ column }})
{%- endmacro %}

{% macro path_segment(path_column, n) -%}
  {#- The `n`th segment of a path between slashes (1 the first, -1 the last). -#}
  {{- adapter.dispatch('path_segment', 'datalake')(path_column, n) -}}
{%- endmacro %}

{% macro duckdb__path_segment(path_column, n) -%}
  string_split({{ path_column }}, '/')[{{ n }}]
{%- endmacro %}

{% macro regexp_replace_first(expression, pattern, group, suffix) -%}
  {#- `expression` with the first match of `pattern` replaced by its group `group` and `suffix`. -#}
  {{- adapter.dispatch('regexp_replace_first', 'datalake')(expression, pattern, group, suffix) -}}
{%- endmacro %}

{% macro duckdb__regexp_replace_first(expression, pattern, group, suffix) -%}
  regexp_replace({{ expression }}, {{ sql_string(pattern) }}, {{ sql_string('\\' ~ group ~ suffix) }})
{%- endmacro %}

{% macro lake_incremental() -%}
  {#- The materialization of the models that read only what changed: `incremental`, with the
      strategies `lake_files` and `touched_keys` below, where the engine deletes rows (DuckDB); a
      table built whole on every build elsewhere (Spark's parquet tables take no deletes). -#}
  {{- return(adapter.dispatch('lake_incremental', 'datalake')()) -}}
{%- endmacro %}

{% macro default__lake_incremental() -%}
  {{- return('table') -}}
{%- endmacro %}

{% macro duckdb__lake_incremental() -%}
  {{- return('incremental') -}}
{%- endmacro %}

{% macro catalog_parts() -%}
  {#- The catalog's part files: part-<upload_id>.parquet in the partition folders, nothing else. -#}
  {{- return('catalog/provider=*/dataset=*/task=*/variant=*/part-*.parquet') -}}
{%- endmacro %}

{% macro read_files_globs() -%}
  {#- The lake files each `read_by` kind stands for, and the relation holding their rows in the
      database (one row per row of the files, with `_file`; the catalog's through part_files). -#}
  {%- set held = 'select _file, count(*) as num_rows from main.{} group by _file' -%}
  {{- return({
      'catalog': {'glob': catalog_parts(), 'held': 'select _file, num_rows from main.part_files'},
      'uploads': {'glob': 'ledger/uploads/*.parquet', 'held': held.format('uploads')},
      'asset_facts': {'glob': 'ledger/assets/*.parquet', 'held': held.format('stg_lake__asset_facts')},
      'fingerprints': {'glob': 'ledger/fingerprints/*.parquet', 'held': held.format('stg_lake__fingerprints')},
      'near_pairs': {'glob': 'ledger/near_pairs/*.parquet', 'held': held.format('stg_lake__near_pairs')},
      'collection_members': {'glob': 'collections/*/*/members.parquet',
                             'held': held.format('stg_lake__collection_members')},
  }) -}}
{%- endmacro %}

{% macro checking_every_row() -%}
  {#- Whether this run checks every row rather than the changed ones: a full build (as recorded at
      its start), or a full check. -#}
  {%- if var('check_all', false) -%}{{ return(true) }}{%- endif -%}
  {%- if not execute -%}{{ return(false) }}{%- endif -%}
  {%- set query = "select full_build from lake_build.builds order by build desc limit 1" -%}
  {{- return(run_query(query).columns[0].values()[0]) -}}
{%- endmacro %}

{% macro this_build() -%}
  {#- This build's number, as SQL. -#}
  (select max(build) from lake_build.builds)
{%- endmacro %}

{% macro in_database(schema, name) -%}
  {#- Whether the database being built has a table or view `schema`.`name` (at render time). -#}
  {{- return(adapter.dispatch('in_database', 'datalake')(schema, name)) -}}
{%- endmacro %}

{% macro duckdb__in_database(schema, name) -%}
  {%- set query -%}
    select count(*) from information_schema.tables where table_catalog = current_database()
    and table_schema = {{ sql_string(schema) }} and table_name = {{ sql_string(name) }}
  {%- endset -%}
  {{- return(execute and run_query(query).columns[0].values()[0] > 0) -}}
{%- endmacro %}

{% macro record_build_changes() -%}
  {{- adapter.dispatch('record_build_changes', 'datalake')() -}}
{%- endmacro %}

{% macro duckdb__record_build_changes() -%}
  {%- set full = flags.FULL_REFRESH or not in_database('main', 'catalog') %}
  {%- if not full and not in_database('lake_build', 'builds') %}
    {%- do exceptions.raise_compiler_error(
          "this database was built by an earlier datalake, whose builds did not record what they "
          ~ "change: build it again with --full-refresh (`datalake db update` does so itself)") %}
  {%- endif %}
  create schema if not exists lake_build;
  create table if not exists lake_build.builds (
      build bigint, started_at timestamp, full_build boolean, invocation_id varchar);
  insert into lake_build.builds
  select coalesce(max(build), 0) + 1, now(), {{ full }}, {{ sql_string(invocation_id) }} from lake_build.builds;

  create or replace table lake_build.read_files as
  {%- for read_by, files in read_files_globs().items() if lake_files(files.glob) %}
  select {{ sql_string(read_by) }} as read_by, file_name as _file, num_rows::bigint as num_rows
  from parquet_file_metadata({{ lake_glob(files.glob) }})
  {%- if read_by == 'collection_members' %} where not {{ in_hidden_collection_folder('file_name') }}{% endif %}
  union all
  {%- endfor %}
  select null::varchar as read_by, null::varchar as _file, null::bigint as num_rows where false;

  create or replace table lake_build.changed_files as
  {%- for read_by, files in read_files_globs().items() %}
  select {{ sql_string(read_by) }} as read_by, _file, coalesce(recorded.num_rows, 0) as num_rows,
         {{ 'coalesce(held.num_rows, 0)' if not full else '0' }} as held_rows
  from {{ read_files(read_by) }} as recorded
  {%- if not full %}
  full join ({{ files.held }}) as held using (_file)
  where coalesce(recorded.num_rows, 0) != coalesce(held.num_rows, 0)
  {%- endif %}
  union all
  {%- endfor %}
  select null, null, null, null where false;

  create or replace table lake_build.touched_partitions as
  select distinct
    {%- for key in ["provider", "dataset", "task", "variant"] %}
      {{ part_path_field('_file', key) }} as {{ key }},
    {%- endfor %}
      provider || '/' || dataset || '/' || task || '/' || variant as partition_key
  from lake_build.changed_files where read_by = 'catalog';

  {%- if not full %}
  create or replace table lake_build.dropped_hashes as
  select distinct hash from main.catalog
  where hash is not null and _file in {{ changed_files('catalog', held=true) }};

  create or replace view lake_build.touched_hashes as
  select hash from lake_build.dropped_hashes
  union
  select hash from main.catalog where hash is not null and _build = {{ this_build() }}
  union
  select hash from main.stg_lake__asset_facts where _file in {{ changed_files('asset_facts') }};

  create or replace view lake_build.touched_stats_partitions as
  select provider, dataset, task, variant, partition_key from lake_build.touched_partitions
  union
  select provider, dataset, task, variant, provider || '/' || dataset || '/' || task || '/' || variant
  from main.uploads where _file in {{ changed_files('uploads') }}
  {%- if in_database('main', 'stg_lake__fingerprints') and in_database('main', 'stg_lake__near_pairs') %}
  union
  select provider, dataset, task, variant, provider || '/' || dataset || '/' || task || '/' || variant
  from main.catalog
  where hash in (select hash from main.stg_lake__fingerprints where _file in {{ changed_files('fingerprints') }}
                 union all
                 select hash_a from main.stg_lake__near_pairs where _file in {{ changed_files('near_pairs') }}
                 union all
                 select hash_b from main.stg_lake__near_pairs where _file in {{ changed_files('near_pairs') }})
  {%- endif %};
  {%- endif %}

  create table if not exists lake_build.rules as select null::varchar as content where false;
  create or replace table lake_build.rules_changed as
  select (select content from read_text({{ lake_glob('config/schema.yaml') }}))
         is distinct from (select any_value(content) from lake_build.rules) as changed;
{%- endmacro %}

{% macro record_checked_rules(results) -%}
  {#- At the end of a run (on-run-end) in which nothing failed: config/schema.yaml as this build
      checked it, so the next one checks every row again only if it changes. -#}
  {{- adapter.dispatch('record_checked_rules', 'datalake')(results) -}}
{%- endmacro %}

{% macro duckdb__record_checked_rules(results) -%}
  {%- if results | selectattr('status', 'in', ['error', 'fail', 'skipped']) | list | length == 0 %}
  delete from lake_build.rules;
  insert into lake_build.rules select content from read_text({{ lake_glob('config/schema.yaml') }});
  {%- endif %}
{%- endmacro %}

{% macro read_files(read_by) -%}
  {#- The recorded files of a kind: _file, num_rows. -#}
  (select _file, num_rows from lake_build.read_files where read_by = {{ sql_string(read_by) }})
{%- endmacro %}

{% macro changed_files(read_by, held=false) -%}
  {#- The changed files of a kind, as a subquery of their names; with `held`, only those the
      database holds rows of (replaced or gone). -#}
  (select _file from lake_build.changed_files where read_by = {{ sql_string(read_by) }}
   {%- if held %} and held_rows > 0{% endif %})
{%- endmacro %}

{% macro files_read_by(read_by) -%}
  {#- The files of a kind this build reads, as a list: the changed ones with rows, every one in a
      full build; none outside a build (parse, compile, show). Models read them by name, so the
      reader opens no other file, however many the lake has. -#}
  {%- if not execute or not in_database('lake_build', 'changed_files') -%}{{ return([]) }}{%- endif -%}
  {%- set query -%}
    select _file from lake_build.changed_files
    where read_by = {{ sql_string(read_by) }} and num_rows > 0
      and (select invocation_id from lake_build.builds order by build desc limit 1) = {{ sql_string(invocation_id) }}
    order by 1
  {%- endset -%}
  {{- return(run_query(query).columns[0].values() | list) -}}
{%- endmacro %}

{% macro file_list(files) -%}
  {#- A SQL list of file names. -#}
  [{{ string_list(files) }}]
{%- endmacro %}

{% macro ledger_rows(files) -%}
  {#- The rows of ledger parts (parquet), columns matched by name, each with its file's name. -#}
  {{- adapter.dispatch('ledger_rows', 'datalake')(files) -}}
{%- endmacro %}

{% macro duckdb__ledger_rows(files) -%}
  read_parquet({{ file_list(files) }}, union_by_name=true, filename=true, hive_partitioning=false)
{%- endmacro %}

{% macro get_incremental_lake_files_sql(arg_dict) -%}
  {#- Incremental strategy `lake_files` (with files_read_by): the rows of changed files (new,
      replaced or gone) give way to the rows just read. Columns are matched by name. -#}
  {%- set target = arg_dict['target_relation'] -%}
  delete from {{ target }} where _file in {{ changed_files(config.require('read_by'), held=true) }};
  insert into {{ target }} by name select * from {{ arg_dict['temp_relation'] }}
{%- endmacro %}

{% macro get_incremental_touched_keys_sql(arg_dict) -%}
  {#- Incremental strategy `touched_keys` of an aggregating mart: its rows whose `unique_key` is in
      lake_build.<config touched> give way to the rows just computed for those keys (none for a
      key that is gone). -#}
  {%- set target, key = arg_dict['target_relation'], arg_dict['unique_key'] -%}
  delete from {{ target }}
  where {{ key }} in (select {{ key }} from lake_build.{{ config.require('touched') }});
  insert into {{ target }} by name select * from {{ arg_dict['temp_relation'] }}
{%- endmacro %}

{% macro get_where_subquery(relation) -%}
  {#- dbt's, but a run that checks every row (checking_every_row) leaves out the tests' `where`. -#}
  {%- if checking_every_row() -%}{{ return(relation) }}{%- endif -%}
  {{- return(dbt.default__get_where_subquery(relation)) -}}
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
