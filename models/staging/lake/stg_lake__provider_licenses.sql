{#- One row per provider of config/schema.yaml that names a license, as this build read the file.
    dbt's fromyaml reads it; datalake's own parser checks it in the same build (stg_lake__task_rules),
    so a license here is one datalake accepted. The view holds the values, not the file: it shows
    the rules as the last build saw them. -#}
{%- set rows = [] %}
{%- if execute %}
  {%- set content = run_query("select content from " ~ source('lake', 'rules')).columns[0].values()[0] %}
  {%- set providers = (fromyaml(content) or {}).get('providers') %}
  {%- if providers is mapping %}
    {%- for name, body in providers.items() if body is mapping and body.get('license') %}
      {%- do rows.append([name, body.get('license'), body.get('license_name'), body.get('license_url')]) %}
    {%- endfor %}
  {%- endif %}
{%- endif %}
select provider, license, license_name, license_url
from (values
    {%- for row in rows %}
    ({% for value in row %}{{ 'null' if value is none else sql_string(value) }}{{ ', ' if not loop.last }}{% endfor %}),
    {%- endfor %}
    (null, null, null, null)
) as t(provider, license, license_name, license_url)
where provider is not null
