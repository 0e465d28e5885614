"""Retraction and garbage collection through the client, on real lakes: what goes, what stays,
what is recorded, and what the rebuilt database holds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import catalog_rows, image_bytes, lake_listing, process
from huggingface_hub import DatasetCard

from datalake import DatalakeClient
from datalake.browse.thumbnails import thumbnail, thumbnail_path
from datalake.errors import ConflictError, NotFoundError, ValidationError

OCR_META = {"lang": "ko", "src": "real"}


def images(seeds, prefix: str) -> pd.DataFrame:
    return pd.DataFrame({"image": [{"bytes": image_bytes(s), "path": f"{prefix}{s}.png"} for s in seeds],
                         "text": [f"{prefix} {s}" for s in seeds]})


def store_hashes(lake: Path) -> set[str]:
    return {p.name.split(".")[0] for p in (lake / "assets").glob("*/*")}


def tables_holding(client: DatalakeClient, value: str) -> dict[str, int]:
    """Every table of the database with rows whose text mentions `value`, and how many (views read
    the lake's files, checked on their own)."""
    found = {}
    for schema, table in client.sql("select table_schema, table_name from information_schema.tables "
                                    "where table_type = 'BASE TABLE'").values:
        if schema == "lake_build":
            continue
        hits = client.sql(f'select count(*) as n from "{schema}"."{table}" t where t::varchar like ?',
                          [f"%{value}%"]).n[0]
        if hits:
            found[f"{schema}.{table}"] = int(hits)
    return found


@pytest.fixture
def shared(client: DatalakeClient) -> tuple[DatalakeClient, str]:
    """Datasets `one` (seeds 0-5) and `two` (3-8) share the images of seeds 3-5; collection `train`
    holds two rows of `one` and the row of seed 3; fingerprints indexed, thumbnails made, database built.
    Returns the client and the hash of seed 3."""
    client.upload_raw(images(range(6), "a"), provider="test", dataset="one", license="CC0-1.0")
    client.upload_raw(images(range(3, 9), "b"), provider="test", dataset="two", license="CC0-1.0")
    process(client)
    client.index_fingerprints()
    client.build_db()
    rows = client.search(datasets=["one"])
    client.import_collection(rows[rows.text.isin(["a 0", "a 1", "a 3"])], "train")
    for digest, relpath in client.sql("select hash, path from assets").values:
        thumbnail(client.lake, digest, relpath)
    client.build_db()
    seed3 = rows.loc[rows.text == "a 3", "hash"].iloc[0]
    return client, seed3


def test_retracting_a_shared_hash_stops_at_the_collection_then_removes_it_everywhere_with_force(shared):
    client, digest = shared
    lake = client.lake.root
    before = lake_listing(lake)
    with pytest.raises(ConflictError, match=r"train v1 \(1 member"):
        client.retract(hashes=[digest], reason="privacy request #123")
    assert lake_listing(lake) == before  # nothing changed, no record written

    done = client.retract(hashes=[digest], reason="privacy request #123", force=True)

    assert done.rows == 2 and {p["partition"] for p in done.parts} == {"test/one/raw/image", "test/two/raw/image"}
    assert [a["hash"] for a in done.assets] == [digest] and done.database == "rebuilt"
    assert digest not in {r.get("hash") for r in catalog_rows(lake)}
    assert len(catalog_rows(lake)) == 10
    assert digest not in store_hashes(lake)
    assert not thumbnail_path(client.lake, digest).exists()
    for ledger in ("assets", "fingerprints", "near_pairs"):
        text = "".join(str(pq.read_table(p).to_pylist()) for p in (lake / "ledger" / ledger).glob("*.parquet"))
        assert digest not in text, ledger
    assert tables_holding(client, digest) == {"main.retractions": 1}  # the record alone names it

    members = client.collection_manager.members("train")
    assert sorted(members.text) == ["a 0", "a 1"]
    check = client.verify_collection("train")
    assert not check["ok"]
    assert check["problems"] == [f"1 member(s) retracted on {done.started_at[:10]} (privacy request #123)"]
    with pytest.warns(UserWarning, match=r"train v1: 1 member\(s\) retracted on .* \(privacy request #123\)"):
        assert len(client.load_collection("train", include_images=False)) == 2
    with pytest.warns(UserWarning, match="retracted"):
        client.export_collection("train", output_path=lake.parent / "train-export")
    card = DatasetCard.load(lake.parent / "train-export" / "README.md").text
    assert "Retracted since it was frozen, and not in this export: 1 member(s) retracted on" in card

    record = client.sql("select * from retractions").iloc[0]
    assert record.retraction_id == done.retraction_id and record.reason == "privacy request #123"
    assert record.retracted_by == "alice" and record.is_complete and record.rows == 2
    assert list(record.hashes) == [digest] and list(record.collection_versions) == ["train/v1"]
    assert client.sql("select num_samples from collections").num_samples[0] == 2


def test_rows_left_in_a_rewritten_part_keep_their_row_ids(shared):
    """A row id names one row for good: collections frozen before a retraction still point at the
    rows they were frozen from, and a full build finds every member's row."""
    client, digest = shared
    rows = client.search(datasets=["two"])
    client.import_collection(rows[rows.text != "b 3"], "later")  # the rows after seed 3's in its part
    client.build_db()
    before = client.sql("select row_id, hash, text from catalog order by row_id")
    seed4 = rows.loc[rows.text == "b 4", "hash"].iloc[0]
    client.retract(hashes=[digest], reason="privacy request #123", force=True)
    client.retract(hashes=[seed4], reason="privacy request #124", force=True)  # the same part, rewritten again

    after = client.sql("select row_id, hash, text from catalog order by row_id")
    kept = before[~before.hash.isin([digest, seed4])].reset_index(drop=True)
    assert len(after) == 8 and after.equals(kept)
    linked = client.sql("select m.name, m.in_catalog, m.hash = c.hash as same from collection_members m "
                        "left join catalog c using (row_id) order by all")
    assert linked.values.tolist() == [["later", True, True]] * 4 + [["train", True, True]] * 2
    assert client.build_db(full_refresh=True)["warnings"] == []
    assert client.sql("select row_id, hash, text from catalog order by row_id").equals(kept)


def test_a_dry_run_shows_the_plan_and_writes_nothing(shared):
    client, digest = shared
    lake = client.lake.root
    before = lake_listing(lake)
    plan = client.retract(datasets=["one"], tasks=["raw"], reason="license withdrawn", dry_run=True)
    assert lake_listing(lake) == before
    assert plan.rows == 6 and plan.dry_run
    assert plan.collections == [{"name": "train", "version": "v1", "members": 3}]
    # seeds 0-2 are `one`'s alone; 3-5 stay for `two`
    only_one = {r["hash"] for r in catalog_rows(lake) if r["dataset"] == "one" and r["text"] in ("a 0", "a 1", "a 2")}
    assert {a["hash"] for a in plan.assets} == only_one and len(plan.hashes) == 6
    assert plan.bytes == sum((lake / "assets" / a["path"]).stat().st_size for a in plan.assets)
    assert "would remove 6 row(s)" in plan.summary() and "Collection train v1 holds 3" in plan.summary()
    assert client.list_retractions() == []


def test_retract_a_dataset_and_an_upload_then_the_database_matches_a_full_build(shared):
    client, _ = shared
    lake = client.lake.root
    client.delete_collection("train")
    done = client.retract(datasets=["one"], reason="license withdrawn")
    assert done.rows == 6 and len(done.assets) == 3
    assert not (lake / "catalog" / "provider=test" / "dataset=one").exists()  # no empty folders
    upload = catalog_rows(lake)[0]["_upload_id"]
    assert client.retract(upload_id=upload, reason="bad upload").rows == 6
    assert catalog_rows(lake) == [] and store_hashes(lake) == set()
    counts = {t: client.sql(f"select count(*) as n from {t}").n[0]
              for t in ("catalog", "assets", "partitions", "uploads", "asset_fingerprints", "near_duplicates")}
    client.build_db(full_refresh=True)
    assert counts == {t: client.sql(f"select count(*) as n from {t}").n[0] for t in counts}
    assert counts["catalog"] == counts["assets"] == 0
    assert [r["reason"] for r in client.list_retractions()] == ["license withdrawn", "bad upload"]


def test_bad_retractions_are_refused_naming_the_fix(shared):
    client, digest = shared
    with pytest.raises(ValidationError, match="name what to retract"):
        client.retract(reason="nothing named")
    with pytest.raises(ValidationError, match="reason"):
        client.retract(datasets=["one"], reason=" ")
    with pytest.raises(ValidationError, match="not allowed"):
        client.retract(datasets=["../one"], reason="x")
    with pytest.raises(ValidationError, match="not an asset hash"):
        client.retract(hashes=["abc"], reason="x")
    with pytest.raises(NotFoundError, match="nothing in the lake matches"):
        client.retract(datasets=["nope"], reason="x")


def test_a_pending_upload_holding_the_rows_blocks_the_retraction(shared):
    client, digest = shared
    lake = client.lake.root
    client.upload_task(pd.DataFrame({"hash": [digest], "label": ["{}"]}), provider="test", dataset="one",
                       task="kie", variant="by_hash", meta=OCR_META)
    before = lake_listing(lake)
    with pytest.raises(ConflictError, match=r"staged upload\(s\) hold rows .*pending, 1 row.*datalake process"):
        client.retract(hashes=[digest], reason="privacy", force=True)
    assert lake_listing(lake) == before


def test_gc_removes_what_an_overwrite_left_and_keeps_what_a_pending_upload_names(client):
    lake = client.lake.root
    client.upload_raw(images(range(6), "a"), provider="test", dataset="one")
    process(client)
    client.upload_raw(images(range(2), "a"), provider="test", dataset="one", overwrite=True)
    process(client)
    orphans = store_hashes(lake) - {r["hash"] for r in catalog_rows(lake)}
    assert len(orphans) == 4
    kept = sorted(orphans)[0]
    client.upload_task(pd.DataFrame({"hash": [kept], "label": ["{}"]}), provider="test", dataset="one",
                       task="kie", variant="by_hash", meta=OCR_META)
    partitions = lake / "catalog" / "provider=test"
    leftovers = [lake / "staging" / "trash" / "x" / "data.parquet",
                 partitions / "dataset=one" / "task=raw" / "variant=image" / ".part-y.parquet.tmp",
                 partitions / "dataset=old" / "task=raw" / "variant=image" / "keep.txt"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"12345")
    leftovers[2].unlink()  # an empty partition folder

    before = lake_listing(lake)
    plan = client.collect_garbage(dry_run=True)
    assert lake_listing(lake) == before
    assert {a["hash"] for a in plan.assets} == orphans - {kept}
    assert {x["path"] for x in plan.leftovers} == {"staging/trash/x", str(leftovers[1].relative_to(lake))}
    freed = sum((lake / "assets" / a["path"]).stat().st_size for a in plan.assets) + 10
    assert plan.bytes == freed and f"would free {freed} bytes" in plan.summary()

    done = client.collect_garbage()
    assert done.bytes == freed
    assert store_hashes(lake) == {r["hash"] for r in catalog_rows(lake)} | {kept}
    assert not (lake / "staging" / "trash" / "x").exists() and not leftovers[1].exists()
    assert not (partitions / "dataset=old").exists()
    process(client)
    assert kept in {r["hash"] for r in catalog_rows(lake)}
    assert client.collect_garbage().assets == []


def test_gc_keeps_assets_the_database_still_lists_until_it_is_built(client):
    lake = client.lake.root
    client.upload_raw(images(range(3), "a"), provider="test", dataset="one")
    process(client)
    client.build_db()
    client.upload_raw(images(range(1), "a"), provider="test", dataset="one", overwrite=True)
    process(client)
    report = client.collect_garbage()
    assert report.assets == [] and report.kept_for_database == 2
    assert "run `datalake db update`" in report.summary()
    client.build_db()
    assert len(client.collect_garbage().assets) == 2
    assert len(store_hashes(lake)) == 1
