"""Licenses: a provider's in config/schema.yaml, a dataset's at upload, the dataset_licenses mart
and its warning for datasets without a known license, and what stats and the CLI show of them."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import process
from datalake import ConfigError, ValidationError
from datalake.cli import app as cli
from datalake.licenses import known_licenses
from datalake.schema import add_provider, load_schema

OCR = {"lang": "en", "src": "real"}


def licenses(client) -> list[tuple]:
    return [tuple(None if pd.isna(v) else v for v in r) for r in client.sql(
        "select provider, dataset, license, name, url, commercial_use, attribution_required, source "
        "from dataset_licenses order by all").itertuples(index=False)]


def test_the_seed_lists_the_common_dataset_licenses_with_their_terms():
    known = known_licenses()
    for spdx in ("CC0-1.0", "CC-BY-4.0", "CC-BY-NC-4.0", "ODbL-1.0", "MIT", "Apache-2.0", "CDLA-Permissive-2.0"):
        assert spdx in known
    assert (known["CC-BY-4.0"].commercial_use, known["CC-BY-4.0"].attribution_required) == (True, True)
    assert (known["CC-BY-NC-4.0"].commercial_use, known["CC0-1.0"].attribution_required) == (False, False)
    assert known["ODbL-1.0"].hub_id == "odbl" and known["CC-BY-SA-4.0"].hub_id == "cc-by-sa-4.0"


def test_an_upload_license_overrides_its_providers_and_the_mart_says_where_each_came_from(client):
    add_provider(client.lake, "museum", "A museum's scans", license="CC-BY-NC-4.0")
    add_provider(client.lake, "agency", license="other", license_name="Agency Data Terms",
                 license_url="https://example.org/terms")
    assert load_schema(client.lake).licenses["museum"].id == "CC-BY-NC-4.0"
    assert "license: CC-BY-NC-4.0" in client.lake.schema_path.read_text()
    client.upload_raw(pd.DataFrame({"n": [1]}), provider="museum", dataset="paintings")
    client.upload_raw(pd.DataFrame({"n": [2]}), provider="museum", dataset="photos", license="CC0-1.0")
    client.upload_task(pd.DataFrame({"t": ["a"]}), provider="agency", dataset="forms", task="ocr", variant="v",
                       meta=OCR)
    client.upload_raw(pd.DataFrame({"n": [3]}), provider="test", dataset="scratch")
    process(client)
    with pytest.warns(UserWarning, match="datasets without a known license") as raised:
        built = client.build_db()
    assert [str(w.message) for w in raised] == built["warnings"]
    assert licenses(client) == [
        ("agency", "forms", "other", "Agency Data Terms", "https://example.org/terms", None, None, "provider"),
        ("museum", "paintings", "CC-BY-NC-4.0", known_licenses()["CC-BY-NC-4.0"].name,
         "https://creativecommons.org/licenses/by-nc/4.0/", False, True, "provider"),
        ("museum", "photos", "CC0-1.0", "Creative Commons Zero v1.0 Universal",
         "https://creativecommons.org/publicdomain/zero/1.0/", True, False, "upload"),
        ("test", "scratch", None, None, None, None, None, None),
    ]
    ledger = client.sql("select dataset, coalesce(license, '-') as license from uploads order by dataset")
    assert list(ledger.itertuples(index=False, name=None)) == [
        ("forms", "-"), ("paintings", "-"), ("photos", "CC0-1.0"), ("scratch", "-")]
    # the build goes on, and names the dataset without a license
    assert len(built["warnings"]) == 1
    assert "test/scratch: no license" in built["warnings"][0] and "museum" not in built["warnings"][0]

    # a later upload naming a license wins; a provider's license changed in the rules shows at the next build
    client.upload_raw(pd.DataFrame({"n": [4]}), provider="museum", dataset="paintings", license="MIT")
    process(client)
    text = client.lake.schema_path.read_text().replace("license: CC-BY-NC-4.0", "license: CC-BY-4.0")
    client.lake.schema_path.write_text(text)
    client.upload_raw(pd.DataFrame({"n": [5]}), provider="museum", dataset="sculptures")
    process(client)
    client.build_db()
    rows = {(p, d): (lic, src) for p, d, lic, *_, src in licenses(client)}
    assert rows[("museum", "paintings")] == ("MIT", "upload")
    assert rows[("museum", "sculptures")] == ("CC-BY-4.0", "provider")


def test_an_unknown_license_is_refused_at_upload_naming_the_known_ones(client):
    frame = pd.DataFrame({"n": [1]})
    with pytest.raises(ValidationError, match=r"unknown license 'CC-BY-5.0'.*CC-BY-4.0.*seeds/licenses.csv"):
        client.upload_raw(frame, provider="test", dataset="d", license="CC-BY-5.0")
    with pytest.raises(ValidationError, match="license 'other' needs its name and URL"):
        client.upload_raw(frame, provider="test", dataset="d", license="other", license_name="Mine")
    with pytest.raises(ValidationError, match="go with license='other'"):
        client.upload_raw(frame, provider="test", dataset="d", license="MIT", license_url="https://x.org")
    assert not list(client.lake.root.glob("staging/pending/*"))
    with pytest.raises(ValidationError, match="unknown license 'WTFPL'"):
        add_provider(client.lake, "fun", license="WTFPL")
    assert "fun" not in load_schema(client.lake).providers


def test_a_bad_provider_license_in_the_rules_file_names_where_it_is(client):
    path = client.lake.schema_path
    path.write_text(path.read_text().replace("description: For trying things out",
                                             "description: For trying things out\n    license: CC-BY-9.9"))
    with pytest.raises(ConfigError, match=r"providers\.test\.license is wrong: unknown license 'CC-BY-9.9'"):
        load_schema(client.lake)
    path.write_text(path.read_text().replace("license: CC-BY-9.9", "licence: MIT"))
    with pytest.raises(ConfigError, match=r"providers\.test has unknown key\(s\) licence"):
        load_schema(client.lake)


def test_the_command_line_sets_licenses_and_prints_the_build_warning(client, tmp_path):
    runner = CliRunner()
    base = ["--base-path", str(client.base_path), "--user", "bob"]
    made = runner.invoke(cli, [*base, "config", "provider", "create", "archive", "--license", "ODbL-1.0"])
    assert made.exit_code == 0, made.output
    listed = runner.invoke(cli, [*base, "config", "provider", "list"])
    assert any(line.split()[:1] == ["archive"] and "ODbL-1.0" in line for line in listed.stdout.splitlines())
    pd.DataFrame({"n": [1, 2]}).to_parquet(tmp_path / "d.parquet")
    refused = runner.invoke(cli, [*base, "upload", str(tmp_path / "d.parquet"), "-p", "test", "-d", "d",
                                  "--license", "cc-by-4.0"])
    assert refused.exit_code == 1 and refused.stderr.startswith("Error: unknown license 'cc-by-4.0'")
    for provider, dataset, extra in (("test", "d", ["--license", "CC-BY-SA-4.0"]), ("archive", "maps", []),
                                     ("test", "bare", [])):
        staged = runner.invoke(cli, [*base, "upload", str(tmp_path / "d.parquet"), "-p", provider, "-d", dataset,
                                     *extra])
        assert staged.exit_code == 0, staged.output
    process(client)
    built = runner.invoke(cli, [*base, "db", "update"])
    assert built.exit_code == 0, built.output
    assert "Warning: datasets without a known license" in built.stderr and "test/bare: no license" in built.stderr
    shown = json.loads(runner.invoke(cli, [*base, "stats", "--format", "json"]).stdout)
    assert {(p["provider"], p["dataset"], p["license"]) for p in shown["partitions"]} == {
        ("test", "d", "CC-BY-SA-4.0"), ("archive", "maps", "ODbL-1.0"), ("test", "bare", None)}
