"""Make `lake-layout1.tar.gz`: a small lake written by datalake 0.1.0 (layout 1, assets at
`assets/ab/cd/<hash>.<ext>`), the input of the migration tests.

It holds two processed datasets (PNG images, one shared by both, and a PDF), a collection version,
an upload waiting in staging and one that failed; not its database
(a type conflict). Run it with datalake 0.1.0 installed:
`python tests/data/make_lake_layout1.py tests/data/lake-layout1.tar.gz`.
"""

import io
import sys
import tarfile
import tempfile
from pathlib import Path

import pandas as pd
from PIL import Image

from datalake import DatalakeClient


def png(seed: int) -> bytes:
    image = Image.new("RGB", (8, 6), (seed * 40 % 256, seed * 90 % 256, 200))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def main(out: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lake = Path(tmp) / "lake"
        client = DatalakeClient(user_id="alice", base_path=lake, create_dirs=True, num_proc=1)
        client.upload_raw(pd.DataFrame({"image": [png(i) for i in range(4)], "label": list("abcd")}),
                          provider="huggingface", dataset="shapes")
        (Path(tmp) / "report.pdf").write_bytes(b"%PDF-1.4\n% a tiny document\n%%EOF\n")
        client.upload_raw(pd.DataFrame({"image": [png(0), png(5)], "text": ["shared", "own"]}),
                          provider="huggingface", dataset="scans")
        pd.DataFrame({"file_path": ["report.pdf"], "pages": [1]}).to_parquet(Path(tmp) / "documents.parquet")
        client.upload_raw(str(Path(tmp) / "documents.parquet"), provider="huggingface", dataset="documents")
        client.wait_for_job_completion(client.trigger_processing())
        client.upload_raw(pd.DataFrame({"image": [png(7)], "pages": ["seven"]}), provider="huggingface",
                          dataset="documents", variant="files")  # `pages` is int64 there: it fails
        client.wait_for_job_completion(client.trigger_processing())
        client.build_db()
        client.import_collection(data_source=client.search(datasets=["shapes"]), name="shapes_train")
        client.upload_raw(pd.DataFrame({"image": [png(6)], "label": ["waiting"]}),
                          provider="huggingface", dataset="shapes")
        with tarfile.open(out, "w:gz") as tar:
            tar.add(lake, arcname="lake", filter=lambda info: None if info.name.split("/")[1:2] in (["locks"], ["db"], ["logs"]) else info)


if __name__ == "__main__":
    main(sys.argv[1])
