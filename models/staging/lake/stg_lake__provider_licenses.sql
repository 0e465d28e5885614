{#- One row per provider of config/schema.yaml that names a license, as this build read the file
    (lake_rules, macros/rules.sql). The view holds the values, not the file: it shows the rules as
    the last build saw them. -#}
-- depends_on: {{ source('lake', 'rules') }}
{%- set rows = [] %}
{%- set providers = lake_rules().providers %}
{%- if providers is mapping %}
  {%- for name, body in providers.items() if body is mapping and body.get('license') %}
    {%- do rows.append([name, body.get('license'), body.get('license_name'), body.get('license_url')]) %}
  {%- endfor %}
{%- endif %}
select provider, license, license_name, license_url
from (values
    {%- for row in rows %}
    ({% for value in row %}{{ 'null' if value is none else sql_string(value) }}{{ ', ' if not loop.last }}{% endfor %}),
    {%- endfor %}
    (null, null, null, null)
) as t(provider, license, license_name, license_url)
where provider is not null
