"""Queries written in another engine's SQL (Athena, Trino, Spark) run on the lake's database."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import image_bytes, process
from typer.testing import CliRunner

from datalake import DatalakeClient
from datalake.cli import app as cli
from datalake.errors import ValidationError


@pytest.fixture
def built(client: DatalakeClient) -> DatalakeClient:
    for dataset, seeds in (("one", range(4)), ("two", range(2, 5))):
        client.upload_raw(pd.DataFrame({"image": [image_bytes(s) for s in seeds],
                                        "text": [f"row {s}" for s in seeds]}), provider="test", dataset=dataset)
    process(client)
    client.build_db()
    return client


def test_athena_trino_and_spark_sql_give_what_duckdb_sql_gives(built):
    expected = built.sql("select dataset, count(distinct hash) as n, max(strftime(_uploaded_at::timestamptz, '%Y')) as y "
                         "from catalog where regexp_matches(text, 'row [0-3]') group by 1 order by 1")
    athena = built.sql("SELECT dataset, approx_distinct(hash) AS n, max(date_format(from_iso8601_timestamp(_uploaded_at), '%Y')) AS y "
                       "FROM catalog WHERE regexp_like(text, 'row [0-3]') GROUP BY 1 ORDER BY 1", dialect="athena")
    pd.testing.assert_frame_equal(athena, expected, check_dtype=False)
    assert built.sql("SELECT dataset, approx_distinct(hash) AS n, max(date_format(from_iso8601_timestamp(_uploaded_at), '%Y')) AS y "
                     "FROM catalog WHERE regexp_like(text, 'row [0-3]') GROUP BY 1 ORDER BY 1",
                     dialect="trino").equals(athena)
    spark = built.sql("SELECT `dataset`, count(DISTINCT `hash`) AS n FROM catalog WHERE `text` RLIKE 'row [0-3]' "
                      "GROUP BY `dataset` ORDER BY 1", dialect="spark")
    assert spark.values.tolist() == [["one", 4], ["two", 2]]
    assert built.sql("SELECT count(*) AS n FROM catalog WHERE dataset = ?", ["two"], dialect="trino").n[0] == 3


def test_problems_name_where_they_are(built):
    with pytest.raises(ValidationError, match=r"the trino SQL does not parse at line 2, column \d+: Expecting \)"):
        built.sql("SELECT dataset\nFROM (SELECT dataset FROM catalog", dialect="trino")
    with pytest.raises(ValidationError, match="unclosed quote"):
        built.sql("SELECT 'abc FROM catalog", dialect="athena")
    with pytest.raises(ValidationError, match="unknown SQL dialect 'oracle'; choose one of duckdb, trino, athena"):
        built.sql("SELECT 1", dialect="oracle")
    with pytest.raises(ValidationError, match="only queries are allowed here"):
        built.sql("DELETE FROM catalog WHERE dataset = 'one'", dialect="trino")
    assert built.sql("SELECT count(*) AS n FROM catalog").n[0] == 7


def test_the_query_command_takes_a_dialect(built):
    base = ["--base-path", str(built.base_path), "query"]
    done = CliRunner().invoke(cli, [*base, "SELECT dataset, approx_distinct(hash) AS n FROM catalog GROUP BY 1 "
                                           "ORDER BY 1", "--dialect", "athena", "--format", "csv"])
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines() == ["dataset,n", "one,4", "two,3"]
    bad = CliRunner().invoke(cli, [*base, "SELECT FROM WHERE (", "--dialect", "trino"])
    assert bad.exit_code == 1 and bad.stderr.startswith("Error: the trino SQL does not parse at line 1, column")
