"""The published catalog as a table other engines read: its columns (the lake's union schema),
the `CREATE EXTERNAL TABLE` statement for Athena (Hive DDL) or Trino (its Hive connector), and its
registration in the Glue catalog with one partition per partition folder."""

from __future__ import annotations

import re
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ValidationError
from ..lake import PARTITION_COLUMNS
from ..sql import quote
from .files import LakeFile, open_file
from .target import PublishError, Target

TABLE = "catalog"
DEFAULT_DATABASE = "datalake"
DIALECTS = ("athena", "trino")
GLUE_NAME = re.compile(r"[a-z0-9_]{1,128}")
PARQUET_FORMAT = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
}
# pyarrow scalar types by predicate, with their Hive (Athena, Glue) and Trino spellings
SCALARS = [
    (pa.types.is_boolean, "boolean", "boolean"), (pa.types.is_int8, "tinyint", "tinyint"),
    (pa.types.is_int16, "smallint", "smallint"), (pa.types.is_uint8, "smallint", "smallint"),
    (pa.types.is_int32, "int", "integer"), (pa.types.is_uint16, "int", "integer"),
    (pa.types.is_int64, "bigint", "bigint"), (pa.types.is_uint32, "bigint", "bigint"),
    (pa.types.is_uint64, "decimal(20,0)", "decimal(20,0)"), (pa.types.is_float16, "float", "real"),
    (pa.types.is_float32, "float", "real"), (pa.types.is_float64, "double", "double"),
    (pa.types.is_date, "date", "date"), (pa.types.is_timestamp, "timestamp", "timestamp(3)"),
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "string", "varchar"),
    (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t),
     "binary", "varbinary"),
    (pa.types.is_null, "string", "varchar"),  # a column no row fills claims no type
]


def check_glue_database(name: object) -> str:
    if not isinstance(name, str) or not GLUE_NAME.fullmatch(name):
        raise ValidationError(f"Glue database name {name!r} is not allowed: use lowercase letters, digits and '_' "
                              "(the names Athena reads), at most 128 characters")
    return name


def catalog_columns(files: Iterable[LakeFile]) -> list[pa.Field]:
    """The catalog's columns as the build reads them: every part file's, by name (integers that
    meet floats become double), the partition folders aside."""
    schemas = []
    for file in files:
        if file.partition:
            with open_file(file) as source:
                schemas.append(pq.read_schema(source))
    if not schemas:
        raise ValidationError("the lake's catalog holds no rows yet: upload and process some first")
    union = pa.unify_schemas(schemas, promote_options="permissive")
    return [f for f in union if f.name not in PARTITION_COLUMNS]


def column_type(t: pa.DataType, dialect: str) -> str:
    """The column type of `t` in Hive's spelling (athena, glue) or Trino's."""
    hive = dialect != "trino"
    if pa.types.is_dictionary(t):
        return column_type(t.value_type, dialect)
    for matches, hive_name, trino_name in SCALARS:
        if matches(t):
            return hive_name if hive else trino_name
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = column_type(t.value_type, dialect)
        return f"array<{inner}>" if hive else f"array({inner})"
    if pa.types.is_map(t):
        key, item = column_type(t.key_type, dialect), column_type(t.item_type, dialect)
        return f"map<{key},{item}>" if hive else f"map({key}, {item})"
    if pa.types.is_struct(t):
        fields = [(f.name, column_type(f.type, dialect)) for f in t]
        if hive:
            return "struct<" + ",".join(f"{n}:{c}" for n, c in fields) + ">"
        return "row(" + ", ".join(f"{quote(n)} {c}" for n, c in fields) + ")"
    raise ValidationError(f"columns of type {t} have no {dialect} type: such a column cannot be published as a table")


def table_ddl(columns: list[pa.Field], location: str, dialect: str, database: str = DEFAULT_DATABASE) -> str:
    """The statement that makes the published catalog a partitioned external table in `dialect`
    (athena: Hive DDL, run in Athena; trino: the Hive connector's, then
    `CALL system.sync_partition_metadata('<database>', 'catalog', 'ADD')` finds the partitions)."""
    if dialect not in DIALECTS:
        raise ValidationError(f"no table statement for {dialect!r}: choose one of {', '.join(DIALECTS)}")
    check_glue_database(database)
    if dialect == "athena":
        body = ",\n".join(f"  {_tick(c.name)} {column_type(c.type, dialect)}" for c in columns)
        keys = ", ".join(f"{_tick(k)} string" for k in PARTITION_COLUMNS)
        return (f"CREATE EXTERNAL TABLE {_tick(database)}.{_tick(TABLE)} (\n{body}\n)\nPARTITIONED BY ({keys})\n"
                f"STORED AS PARQUET\nLOCATION {_literal(location)}")
    body = ",\n".join(f"  {quote(c.name)} {column_type(c.type, dialect)}" for c in columns)
    keys = ",\n".join(f"  {quote(k)} varchar" for k in PARTITION_COLUMNS)
    names = ", ".join(_literal(k) for k in PARTITION_COLUMNS)
    return (f"CREATE TABLE {quote(database)}.{quote(TABLE)} (\n{body},\n{keys}\n)\n"
            f"WITH (format = 'PARQUET', external_location = {_literal(location)}, partitioned_by = ARRAY[{names}])")


def catalog_location(target: Target) -> str:
    return f"{target.url}/catalog/"


def register_glue_table(target: Target, database: str, columns: list[pa.Field],
                        partitions: list[tuple[str, ...]]) -> str:
    """Create or update `<database>.catalog` in the Glue catalog (and the database if missing) over
    the published catalog, with exactly the given partitions; its name. The Glue client comes
    from the usual AWS settings (AWS_ENDPOINT_URL_GLUE for a Glue-compatible endpoint)."""
    import botocore.session
    from botocore.exceptions import ClientError

    glue = botocore.session.get_session().create_client("glue")
    location = catalog_location(target)
    storage = {"Columns": [{"Name": c.name, "Type": column_type(c.type, "glue")} for c in columns],
               "Location": location, **PARQUET_FORMAT}
    table = {"Name": TABLE, "TableType": "EXTERNAL_TABLE", "StorageDescriptor": storage,
             "PartitionKeys": [{"Name": k, "Type": "string"} for k in PARTITION_COLUMNS],
             "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE"}}
    try:
        _ensure_database(glue, database)
        if _exists(glue.get_table, DatabaseName=database, Name=TABLE):
            glue.update_table(DatabaseName=database, TableInput=table)
        else:
            glue.create_table(DatabaseName=database, TableInput=table)
        _sync_partitions(glue, database, storage, partitions)
    except ClientError as exc:
        raise PublishError(f"the Glue catalog refused the table {database}.{TABLE}: {exc}") from None
    return f"{database}.{TABLE}"


def _ensure_database(glue: Any, database: str) -> None:
    if not _exists(glue.get_database, Name=database):
        glue.create_database(DatabaseInput={"Name": database, "Description": "datalake's published catalog"})


def _exists(get: Any, **names: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        get(**names)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "EntityNotFoundException":
            return False
        raise


def _sync_partitions(glue: Any, database: str, storage: dict[str, Any], partitions: list[tuple[str, ...]]) -> None:
    """Add the partitions Glue lacks, remove those the published catalog no longer has."""
    pages = glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=TABLE)
    known = {tuple(p["Values"]) for page in pages for p in page["Partitions"]}
    wanted = set(partitions)
    new = [{"Values": list(values), "StorageDescriptor": {**storage, "Location": storage["Location"] + "/".join(
        f"{k}={v}" for k, v in zip(PARTITION_COLUMNS, values)) + "/"}} for values in sorted(wanted - known)]
    for start in range(0, len(new), 100):  # Glue's batch limits: 100 to create, 25 to delete
        failed = glue.batch_create_partition(DatabaseName=database, TableName=TABLE,
                                             PartitionInputList=new[start:start + 100]).get("Errors")
        if failed:
            raise PublishError(f"the Glue catalog refused partitions of {database}.{TABLE}: {failed[0]}")
    gone = [{"Values": list(values)} for values in sorted(known - wanted)]
    for start in range(0, len(gone), 25):
        glue.batch_delete_partition(DatabaseName=database, TableName=TABLE, PartitionsToDelete=gone[start:start + 25])


def _tick(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
