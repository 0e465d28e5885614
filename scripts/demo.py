"""The demo: generate a small image dataset, upload raw images and OCR labels, process, show what landed,
build the database, search, download, write the dbt docs, freeze, export and verify a collection, and
say how to browse the lake."""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from datalake import DatalakeClient

WORDS = ["영수증", "합계", "receipt", "total", "請求書", "invoice", "date", "price"]


def make_image(i: int, rng: random.Random) -> tuple[bytes, list[dict]]:
    """A small document-like image with a few words drawn on it, and the words' boxes."""
    image = Image.new("RGB", (160, 96), (250, 250, 245))
    draw = ImageDraw.Draw(image)
    elements = []
    for line in range(3):
        word = rng.choice(WORDS)
        box = [8, 8 + 28 * line, 8 + 12 * len(word), 28 + 28 * line]
        draw.rectangle(box, outline=(rng.randrange(200), 40, 90))
        draw.text((box[0] + 2, box[1] + 4), f"{word[:6]} {i}", fill=(20, 20, 20))
        elements.append({"text": word, "bbox": box})
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG" if i % 2 else "PNG", quality=85)
    return buffer.getvalue(), elements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lake", default="demo-lake")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--server", default=None, help="process on this datalake-server (see `make serve`)")
    args = parser.parse_args()
    lake = Path(args.lake)
    if not args.server:  # a served lake is kept: running again shows that nothing is stored twice
        shutil.rmtree(lake, ignore_errors=True)
    work = lake.parent / f"{lake.name}-source"
    work.mkdir(parents=True, exist_ok=True)

    rng = random.Random(7)
    images = [make_image(i, rng) for i in range(args.images)]
    raw = pd.DataFrame({"image": [{"bytes": b, "path": f"doc_{i:03d}.jpg"} for i, (b, _) in enumerate(images)],
                        "doc_id": [f"doc_{i:03d}" for i in range(len(images))]})
    raw.to_parquet(work / "raw.parquet")
    labels = pd.DataFrame({"image": [b for b, _ in images],
                           "label": [{"elements": e} for _, e in images]})

    client = DatalakeClient(user_id="demo", base_path=lake, create_dirs=True, server_url=args.server)
    raw_id = client.upload_raw(work / "raw.parquet", provider="huggingface", dataset="demo_docs",
                               description="generated document images")
    ocr_id = client.upload_task(labels, provider="huggingface", dataset="demo_docs", task="ocr",
                                variant="base_ocr", meta={"lang": "ko", "src": "synthetic"}, license="CC0-1.0")
    again_id = client.upload_raw(work / "raw.parquet", provider="huggingface", dataset="demo_docs")
    print(f"staged uploads: raw {raw_id}, ocr {ocr_id}, raw again {again_id}")

    job_id = client.trigger_processing()
    result = client.wait_for_job_completion(job_id, polling_interval=0.2)
    print(f"\njob {job_id}:")
    for s in result["uploads"]:
        if s["status"] == "failed":
            raise SystemExit(f"upload {s['upload_id']} failed: {s['error']}")
        print(f"  {s['partition']:40} rows in {s['rows_in']:3}  written {s['rows_written']:3}  "
              f"duplicates {s['duplicate_rows']:3}  new assets {s['new_assets']:3}  reused {s['reused_assets']:3}")

    print("\nwhat landed:")
    for part in sorted((lake / "catalog").rglob("part-*.parquet")):
        table = pq.read_table(part)
        print(f"  {part.relative_to(lake)}: {table.num_rows} rows, columns {', '.join(table.column_names)}")
    assets = [p for p in (lake / "assets").rglob("*") if p.is_file()]
    print(f"  assets/: {len(assets)} files, {sum(p.stat().st_size for p in assets)} bytes "
          f"(from {2 * len(images)} image cells uploaded)")
    print("\nbuilding the database (dbt build) ...")
    info = client.build_db()
    print(f"  {info['path']}: " + ", ".join(f"{t} {n}" for t, n in info["tables"].items()))
    found = client.search(providers=["huggingface"], datasets=["demo_*"], tasks=["ocr"], meta={"lang": "ko"},
                          text_search={"column": "label", "text": "영수증", "json_path": "$.elements[*].text"})
    print(f"\nsearch for '영수증' in OCR labels: {len(found)} rows")
    print(found[["row_id", "path", "label"]].head(3).to_string(index=False, max_colwidth=60))
    print("\n" + client.sql("select partition_key, num_rows, num_assets from partitions order by 1").to_string(index=False))
    downloaded = lake.parent / f"{lake.name}-exports" / "receipts-search"
    shutil.rmtree(downloaded, ignore_errors=True)
    report = client.download(found, downloaded, format="dataset", include_images=True)
    print(f"\ndownloaded the search results to {downloaded}: {report['rows']} rows, "
          f"{report['missing_assets']} missing assets")
    print(f"dbt docs (lineage from the lake's files to the marts): {client.generate_docs()}")

    frozen = client.import_collection(found, name="demo_receipts", description="OCR rows mentioning 영수증")
    out = lake.parent / f"{lake.name}-exports" / f"demo_receipts-{frozen['version']}"
    shutil.rmtree(out, ignore_errors=True)
    exported = client.export_collection("demo_receipts", frozen["version"], out, format="datasets")
    verified = client.verify_collection("demo_receipts")
    print(f"\ncollection demo_receipts {frozen['version']}: {frozen['num_samples']} samples, fingerprint "
          f"{frozen['fingerprint']}, verifies: {verified['ok']}")
    print(f"exported to {exported['output']} ({exported['rows']} rows; load it with datasets.load_from_disk; "
          "its README.md is a Hugging Face dataset card: license, provenance, features)")
    print(f"\nsee it in a browser (overview, gallery, boxes drawn on the images, collections):\n"
          f"  {os.path.relpath(Path(sys.executable).with_name('datalake'))} --base-path {lake} browse")

if __name__ == "__main__":
    main()
