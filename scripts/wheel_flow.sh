#!/usr/bin/env bash
# datalake as a user installs it: build a wheel from this repository, check it holds the package
# and the dbt project (and nothing else), pip install it into a fresh venv outside the repository
# and, from a folder outside it, run a whole session: init, upload, process, database build (CLI
# and Python), search, download, collections, docs and the server. Stops with a non-zero exit
# code at the first step that fails. PYTHON picks the interpreter (default python3).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/datalake-wheel.XXXXXX")"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
started=$SECONDS
step() { printf '== %s (%ss)\n' "$*" "$((SECONDS - started))"; }

step "build the wheel from the repository's files"
# From a copy of the files git knows (tracked or not ignored): no stale build/ output can slip in.
mkdir "$work/src"
git -C "$repo" ls-files -z --cached --others --exclude-standard \
    | tar -C "$repo" --null --files-from=- --ignore-failed-read -cf - | tar -C "$work/src" -xf -
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$work/src"
wheel="$(ls "$work"/dist/datalake-*.whl)"

step "the wheel holds the package and the dbt project, nothing else"
"$python" - "$wheel" "$work/src" <<'EOF'
import sys
import zipfile
from collections import Counter
from pathlib import Path

wheel, src = sys.argv[1], Path(sys.argv[2])
shipped = {name for name in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in name}
package = [*(src / "datalake_py").rglob("*.py"), *(src / "datalake_py" / "browse" / "templates").glob("*.html")]
expected = {f"datalake/{p.relative_to(src / 'datalake_py')}" for p in package}
project = [src / "dbt_project.yml", src / "profiles" / "profiles.yml"]
for folder in ("models", "macros", "data-tests", "seeds", "snapshots"):
    project += [p for p in (src / folder).rglob("*") if p.is_file()]
expected |= {f"datalake/project/{p.relative_to(src)}" for p in project}
missing, extra = sorted(expected - shipped), sorted(shipped - expected)
if missing or extra:
    sys.exit(f"the wheel does not hold what it should:\n  missing: {missing}\n  extra: {extra}")


def folder(name: str) -> str:
    """Where a file sits, dbt project files by their top folder (models/, macros/, …)."""
    parts = name.split("/")
    return "/".join(parts[:3] if parts[1] == "project" and len(parts) > 3 else parts[:-1])


counts = Counter(folder(name) for name in shipped)
print(f"{Path(wheel).name}: {len(shipped)} files:", ", ".join(f"{k}/ {n}" for k, n in sorted(counts.items())))
EOF

step "pip install the wheel into a fresh venv"
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "$wheel"
export PATH="$work/venv/bin:$PATH"
unset DATALAKE_HOME DATALAKE_USER DATALAKE_NUM_PROC DATALAKE_SERVER_URL DATALAKE_TOKEN PYTHONPATH
mkdir "$work/run"
cd "$work/run"
python -c "import datalake, sys; sys.exit(None if '/site-packages/' in datalake.__file__ else f'datalake imported from {datalake.__file__}')"
datalake --version

step "init and upload"
datalake init lake
export DATALAKE_HOME="$work/run/lake" DATALAKE_USER=ci
python - <<'EOF'
import io

import pandas as pd
from PIL import Image


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (seed % 256, seed // 256, 7)).save(buffer, format="PNG")
    return buffer.getvalue()


# Enough rows that an upload takes its parallel path.
pd.DataFrame({"image": [png(i) for i in range(1100)], "n": range(1100)}).to_parquet("raw.parquet")
pd.DataFrame({"image": [png(i) for i in range(3)], "label": ["total", "invoice", "receipt"]}).to_parquet("ocr.parquet")
pd.DataFrame({"image": [png(5000 + i) for i in range(2)], "n": [1, 2]}).to_parquet("later.parquet")
EOF
datalake upload raw.parquet --provider huggingface --dataset coco_2017
datalake upload ocr.parquet --provider huggingface --dataset coco_2017 --task ocr --variant base_ocr \
    --meta lang=en --meta src=real

step "process and build the database"
datalake process start
datalake db update
datalake search --dataset coco_2017 --task ocr --text invoice --format csv | grep -q invoice

step "download, collections"
datalake download --dataset coco_2017 --task ocr --output out/ocr.parquet --format parquet
datalake collections import out/ocr.parquet --name picked
datalake db update
datalake collections export picked --output out/picked.parquet --format parquet
python -c "import pandas as pd; rows = pd.read_parquet('out/picked.parquet/data.parquet'); assert len(rows) == 3, rows"

step "docs"
datalake docs generate
test -s lake/db/dbt-target/index.html

step "the server on 127.0.0.1: its pages, and processing an upload"
port="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
datalake-server --base-path lake --port "$port" > server.log 2>&1 &
server_pid=$!
python - "$port" <<'EOF'
import sys
import time
import urllib.request

for _ in range(300):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2) as answer:
            print(answer.read().decode())
            break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit(f"the server did not answer /health:\n{open('server.log').read()}")
EOF
python - "$port" <<'EOF'
import sys
import urllib.request

with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/gallery?task=ocr", timeout=10) as answer:
    page = answer.read().decode()
assert "<strong>3</strong> matching rows" in page and page.count('src="/thumbnails/') == 3, page[-2000:]
EOF
datalake upload later.parquet --provider huggingface --dataset coco_2017
datalake process start --server "http://127.0.0.1:$port" --wait
kill "$server_pid"
wait "$server_pid" || true
server_pid=""

step "build_db() from Python"
python - <<'EOF'
from datalake import DatalakeClient

client = DatalakeClient(user_id="ci", base_path="lake")
info = client.build_db()
assert info["incremental"] and info["tables"]["catalog"] == 1105, info
assert len(client.search(datasets=["coco_2017"], tasks=["ocr"])) == 3
print("catalog rows:", info["tables"]["catalog"])
EOF

step "the session wrote nothing into the installed dbt project"
python - <<'EOF'
import sys
from importlib.metadata import files
from pathlib import Path

import datalake

installed = {str(f) for f in files("datalake")}
site = Path(datalake.__file__).parent.parent
written = [str(p) for p in (site / "datalake" / "project").rglob("*")
           if p.is_file() and str(p.relative_to(site)) not in installed]
sys.exit(f"files written into the installed package: {written}" if written else None)
EOF

step "done"
