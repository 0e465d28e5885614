"""Scale-out benchmark: publishing to S3 and building on Spark, on the lake of bench/query.py, each beside a baseline.

The lake is bench/query.py's (--rows task rows over --images shared images, made and kept in
--workdir the first time, reused after). The object store is moto's S3 server on 127.0.0.1,
started here in a process of its own (the server and the client measured do not share one
interpreter), with dummy AWS settings, and warmed up first (200 of the lake's files sent to a
bucket of their own, unmeasured); two empty buckets. Every figure is one run.

- publish, cold: `client.publish("s3://<bucket A>/lake", endpoint_url=...)` into the empty bucket:
  objects, MB, seconds, MB/s, objects/s; vs a plain parallel upload of exactly the same files (the
  keys the manifest of that publish names, read from the lake) with s3fs `put_file`, as many at
  once as the publisher sends (datalake_py/publish/publisher.py WORKERS), into bucket B. The
  publish also hashes every file, lists the prefix and writes its manifest; the plain upload does
  none of that;
- publish again, nothing changed (every object listed, compared and skipped; a new manifest
  written) vs the plain upload sending everything again (the cold figures above);
- reading the copy: a database built from it into a new folder (`DatalakeClient.from_published`,
  dbt-duckdb reading the objects through s3fs) vs the lake's own full build; `to_dataset` of 1,000
  rows with their images read from the copy (export.COPY_READERS at once) vs the same one object
  at a time (the lake's own files' time printed beside);
- full build: `client.build_db(target="spark")` (dbt-spark's session method: a dbt process with a
  local Spark in it, so every Spark build starts a JVM) vs `client.build_db(full_refresh=True)` on
  DuckDB, the first of this process (it starts dbt's process too); each with the peak memory of the
  processes it ran (their resident memory summed, sampled every 0.25 s). A second DuckDB build (dbt
  already started) and a bare local Spark session started and stopped are printed below the table.
  Spark is skipped, saying why, without pyspark, dbt-spark or Java.

Usage: python bench/scaleout.py [--rows 1000000] [--images 2000] [--workdir bench-work/query]
                                [--only publish|build]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).parent))
from machine import Watch, others_cpu_s  # noqa: E402
from query import lake_parser, open_lake, print_table, timed  # noqa: E402  the lake bench/query.py makes and keeps

from datalake import DatalakeClient, export  # noqa: E402
from datalake.errors import ConfigError, DbBuildError  # noqa: E402
from datalake.publish.files import lake_files  # noqa: E402
from datalake.publish.publisher import WORKERS  # noqa: E402

PUBLISHED, PLAIN, WARM_UP = "datalake-bench-publish", "datalake-bench-plain", "datalake-bench-warm-up"  # buckets
WARM_UP_OBJECTS = 200
IMAGE_ROWS = 1_000  # rows a reader turns into a dataset with their images
MOTO = """
import logging
import sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
sys.stdin.read()  # until the benchmark closes it
server.stop()
"""
SPARK_SESSION = """
from pyspark.sql import SparkSession
SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate().stop()
"""


# -- the object store ----------------------------------------------------------------------


def dummy_aws_settings() -> None:
    """AWS settings that reach nothing but the local server: dummy keys, no profile files, no
    instance metadata."""
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update({"AWS_ACCESS_KEY_ID": "dummy-key", "AWS_SECRET_ACCESS_KEY": "dummy-secret",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                       "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"})


@contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 server on a free loopback port, in a process of its own; its endpoint URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", MOTO, str(port)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        if server.stdout.readline().strip() != "ready":
            raise SystemExit("moto's S3 server did not start (pip install -e '.[test]')")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stdin.close()
        server.wait(timeout=30)


def store(endpoint: str) -> Any:
    import s3fs

    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True,
                             use_listings_cache=False)


def plain_upload(fs: Any, lake: Path, objects: list[dict[str, Any]], root: str) -> None:
    """Each object's lake file sent with s3fs `put_file` to `root/<key>`, WORKERS at a time."""
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda o: fs.put_file(str(lake / o["key"]), f"{root}/{o['key']}"), objects))


def copied(fs: Any, root: str) -> tuple[int, int]:
    """Objects under `root` and their bytes, manifests aside."""
    found = fs.find(root, detail=True)
    sizes = [int(info["size"]) for path, info in found.items() if "/_manifests/" not in path]
    return len(sizes), sum(sizes)


# -- the parts -----------------------------------------------------------------------------


def bench_publish(client: DatalakeClient, reader: Path) -> list[tuple]:
    dummy_aws_settings()
    with s3_server() as endpoint:
        fs = store(endpoint)
        for bucket in (PUBLISHED, PLAIN, WARM_UP):
            fs.mkdir(bucket)
        warm_up = [{"key": f.key} for f in lake_files(client.lake)[:WARM_UP_OBJECTS]]
        plain_upload(fs, client.base_path, warm_up, f"{WARM_UP}/lake")  # the server and s3fs started, unmeasured
        print(f"publish to moto's S3 server at {endpoint}, {WORKERS} objects at a time ...")
        cold_s, cold = timed(lambda: client.publish(f"s3://{PUBLISHED}/lake", endpoint_url=endpoint))
        print(f"  cold: {cold.summary()}")
        objects = json.loads(fs.cat_file(f"{PUBLISHED}/lake/{cold.manifest}"))["objects"]
        again_s, again = timed(lambda: client.publish(f"s3://{PUBLISHED}/lake", endpoint_url=endpoint))
        print(f"  again: {again.summary()}")
        plain_s, _ = timed(lambda: plain_upload(fs, client.base_path, objects, f"{PLAIN}/lake"))
        plain_objects, plain_bytes = copied(fs, f"{PLAIN}/lake")
        if (plain_objects, plain_bytes) != copied(fs, f"{PUBLISHED}/lake"):
            raise SystemExit("the plain upload did not copy what the publish copied")
        read = bench_read(client, f"s3://{PUBLISHED}/lake", endpoint, reader)
    kinds = Counter(o["key"].split("/", 1)[0] for o in objects)
    print("  objects by folder: " + ", ".join(f"{k} {n:,}" for k, n in sorted(kinds.items())))
    mb = cold.uploaded_bytes / 1e6
    plain = f"plain put_file x{WORKERS}"
    return [
        ("publish, cold: objects sent", "objects", cold.uploaded, plain_objects, plain, None, "none"),
        ("publish, cold: data sent", "MB", mb, plain_bytes / 1e6, plain, None, "none"),
        ("publish, cold", "s", cold_s, plain_s, plain, None, "none"),
        ("publish, cold", "MB/s", mb / cold_s, plain_bytes / 1e6 / plain_s, plain, None, "none"),
        ("publish, cold", "objects/s", cold.uploaded / cold_s, plain_objects / plain_s, plain, None, "none"),
        ("publish again, nothing changed", "s", again_s, plain_s, "plain upload of all again", None, "none"),
        ("publish again: objects checked", "objects/s", again.objects / again_s, plain_objects / plain_s,
         "plain upload of all again", None, "none"),
        *read,
    ]


def bench_read(client: DatalakeClient, url: str, endpoint: str, folder: Path) -> list[tuple]:
    """A reader of the copy: its first build beside the lake's own full build, and 1,000 rows with
    their images read from the copy beside the same read one object at a time and from the lake."""
    shutil.rmtree(folder, ignore_errors=True)
    print(f"a database built from the copy, in {folder} ...")
    local_s, _ = timed(lambda: client.build_db(full_refresh=True))
    reader_s, reader = timed(lambda: DatalakeClient.from_published(url, folder, endpoint_url=endpoint))
    rows = reader.search(limit=IMAGE_ROWS)
    parallel_s, _ = timed(lambda: reader.to_dataset(rows))
    readers, export.COPY_READERS = export.COPY_READERS, 1
    try:
        serial_s, _ = timed(lambda: reader.to_dataset(rows))
    finally:
        export.COPY_READERS = readers
    local_rows_s, _ = timed(lambda: client.to_dataset(client.search(limit=IMAGE_ROWS)))
    against = f"to_dataset, one object at a time (lake's own files: {local_rows_s:.2f} s)"
    return [
        ("reader: first build, from the copy", "s", reader_s, local_s, "the lake's full build", None, "none"),
        (f"reader: to_dataset of {IMAGE_ROWS:,} rows with images", "s", parallel_s, serial_s, against, None,
         "none"),
    ]


def spark_missing() -> str | None:
    """Why Spark cannot build here, or None."""
    import importlib.util

    if importlib.util.find_spec("pyspark") is None or importlib.util.find_spec("dbt.adapters.spark") is None:
        return "pyspark or dbt-spark is not installed (pip install -e '.[spark]')"
    if shutil.which("java") is None:
        return "no Java runtime on PATH (apt-get install default-jre-headless)"
    return None


def bench_build(client: DatalakeClient) -> tuple[list[tuple], list[str], int]:
    """The build figures, notes printed below them, and the CPU ticks of processes the builds
    started that ended unreaped through this one (machine.Watch)."""
    print("full build on DuckDB, the first of this process (dbt's process started in it) ...")
    with Watch() as duck:
        duck_s, built = timed(lambda: client.build_db(full_refresh=True))
    warm_s, _ = timed(lambda: client.build_db(full_refresh=True))
    notes = [f"DuckDB: {built['nodes']} dbt nodes; a second full build, dbt already started: {warm_s:.2f} s"]
    spark_s = spark_rss = None
    gone_ticks = duck.gone_ticks
    why = spark_missing()
    if why:
        print(f"Spark build skipped: {why}")
        notes.append(f"Spark build skipped: {why}")
    else:
        with Watch() as session:
            session_s, _ = timed(lambda: subprocess.run([sys.executable, "-c", SPARK_SESSION], check=True,
                                                        capture_output=True))
        jvm = f"every Spark build starts a JVM: a bare local[2] session started and stopped takes {session_s:.1f} s"
        fresh = not (client.lake.db_dir / "spark" / "metastore_db").exists()
        print(f"full build on Spark (a dbt process with a local Spark in it; "
              f"{'a new' if fresh else 'the existing'} metastore) ...")
        started = time.perf_counter()
        try:
            with Watch() as spark_watch:
                spark = client.build_db(target="spark")
            spark_s, spark_rss = time.perf_counter() - started, spark_watch.peak_rss / 2**30
            notes.append(f"Spark: {spark['nodes']} dbt nodes; {jvm}")
        except (ConfigError, DbBuildError) as exc:
            failed_s = time.perf_counter() - started
            print(f"  failed after {failed_s:.0f} s: {exc}")
            notes.append(f"Spark build failed after {failed_s:.0f} s (printed above); {jvm}")
        gone_ticks += session.gone_ticks + spark_watch.gone_ticks
    against = "DuckDB, first build"
    return [
        ("full build on Spark", "s", spark_s, duck_s, against, None, "none"),
        ("peak memory of the full build on Spark", "GiB", spark_rss, duck.peak_rss / 2**30, against, None, "none"),
    ], notes, gone_ticks


def parse_args() -> argparse.Namespace:
    parser = lake_parser(__doc__)
    parser.add_argument("--only", choices=["publish", "build"], help="run one part only")
    args = parser.parse_args()
    if args.rows < 1 or args.images < 1:
        parser.error("--rows and --images must be positive")
    return args


def main() -> None:
    args = parse_args()
    for unlicensed in ("datasets without a known license", "dataset_licenses_known"):  # the generated lake has none
        warnings.filterwarnings("ignore", message=unlicensed)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    client = open_lake(workdir, args.rows, args.images, fresh=False)
    started, others = time.perf_counter(), others_cpu_s()
    figures, notes, gone_ticks = [], [], 0
    if args.only in (None, "publish"):
        figures += bench_publish(client, workdir / f"reader-{args.rows}-{args.images}")
    if args.only in (None, "build"):
        rows, notes, gone_ticks = bench_build(client)
        figures += rows
    wall, others = time.perf_counter() - started, max(0.0, others_cpu_s(gone_ticks) - others)
    print(f"\n{client.count():,} catalog rows")
    print_table(figures)
    print()
    for note in notes:
        print(f"  {note}")
    print(f"  other work used {others:.0f} CPU s of the {wall:.0f} s of measurements on {os.cpu_count()} cores "
          f"({others / wall:.1f} cores busy); figures are only fair when that is near 0")


if __name__ == "__main__":
    main()
