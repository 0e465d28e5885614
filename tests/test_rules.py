"""Lake layout and the rules in config/schema.yaml: defaults, edits, concurrency, hand-edit errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from datalake import ConfigError, ConflictError, DatalakeClient, NotFoundError, ValidationError
from datalake.schema import BoxRule, add_provider, add_task, init_lake, load_schema, remove_provider, remove_task


def test_init_creates_the_layout_and_default_rules(tmp_path):
    lake = init_lake(tmp_path / "lake")
    for folder in ("config", "staging/pending", "staging/processing", "staging/failed", "catalog", "assets",
                   "collections", "db", "logs"):
        assert (lake.root / folder).is_dir(), folder
    schema = load_schema(lake)
    assert sorted(schema.providers) == ["aihub", "huggingface", "inhouse", "opensource", "test"]
    for task in ("ocr", "kie", "vqa", "layout"):
        assert schema.tasks[task].required_fields == ["lang", "src"]
        assert schema.tasks[task].allowed_values == {"lang": ["ko", "en", "ja", "multi"], "src": ["real", "synthetic"]}
    assert schema.tasks["document_conversion"].allowed_values["mod"] == ["page", "table", "chart"]


def test_init_keeps_an_existing_lake_and_its_rules(tmp_path):
    lake = init_lake(tmp_path / "lake")
    add_provider(lake, "mine")
    init_lake(tmp_path / "lake")
    assert "mine" in load_schema(lake).providers


def test_create_and_remove_providers_and_tasks(tmp_path):
    lake = init_lake(tmp_path)
    add_provider(lake, "hf", "Hugging Face mirror")
    add_task(lake, "caption", ["lang"], {"lang": ["en"]})
    schema = load_schema(lake)
    assert schema.providers["hf"] == "Hugging Face mirror"
    assert schema.tasks["caption"].allowed_values == {"lang": ["en"]}
    with pytest.raises(ConflictError, match="provider 'hf' is already registered"):
        add_provider(lake, "hf")
    remove_provider(lake, "hf")
    remove_task(lake, "caption")
    with pytest.raises(NotFoundError, match="task 'caption' is not registered"):
        remove_task(lake, "caption")
    assert "hf" not in load_schema(lake).providers


@pytest.mark.parametrize("call, message", [
    (lambda lake: add_provider(lake, "../x"), r"provider name '\.\./x' is not allowed"),
    (lambda lake: add_task(lake, "raw", []), r"task name 'raw' is reserved"),
    (lambda lake: add_task(lake, "t", ["lang"], {"src": ["a"]}), r"--allowed src=\.\.\. names a field that is not required"),
])
def test_bad_rule_edits_are_refused_and_change_nothing(tmp_path, call, message):
    lake = init_lake(tmp_path)
    before = lake.schema_path.read_bytes()
    with pytest.raises(ValidationError, match=message):
        call(lake)
    assert lake.schema_path.read_bytes() == before


def test_a_task_created_later_is_enforced_on_upload(tmp_path):
    lake = init_lake(tmp_path)
    add_task(lake, "caption", ["style"], {"style": ["short", "long"]})
    client = DatalakeClient(user_id="bob", base_path=tmp_path)
    import pandas as pd

    with pytest.raises(ValidationError, match=r"meta style='medium' is not allowed for task 'caption'"):
        client.upload_task(pd.DataFrame({"t": ["x"]}), provider="test", dataset="d", task="caption",
                           variant="v", meta={"style": "medium"})
    client.upload_task(pd.DataFrame({"t": ["x"]}), provider="test", dataset="d", task="caption",
                       variant="v", meta={"style": "short"})


def test_concurrent_edits_by_two_processes_lose_nothing(tmp_path):
    lake = init_lake(tmp_path)
    script = ("import sys; from datalake.lake import Lake; from datalake.schema import add_provider\n"
              "for i in range(25): add_provider(Lake(sys.argv[1]), f'{sys.argv[2]}{i}')")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), prefix]) for prefix in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    providers = load_schema(lake).providers
    assert {f"{p}{i}" for p in "ab" for i in range(25)} <= set(providers)
    assert not list((tmp_path / "config").glob(".*.tmp"))


BOXES = "providers: {}\ntasks:\n  ocr:\n    boxes: "


@pytest.mark.parametrize("text, message", [
    ("providers: [a, b\n", r"is not valid YAML"),
    ("- just a list\n", r"the file must be a mapping with 'providers' and 'tasks'"),
    ("providers: {}\ntasks:\n  ocr:\n    required_fields: lang\n", r"tasks\.ocr\.required_fields must be a list of strings"),
    ("providers: {}\ntasks:\n  ocr:\n    required_fields: [lang]\n    allowed_values: {src: [a]}\n",
     r"tasks\.ocr\.allowed_values\.src names a field missing from required_fields"),
    ("providers: {}\ntaks: {}\n", r"unknown top-level key\(s\) taks"),
    ("providers: {'../bad': {}}\n", r"providers holds a bad name"),
    (BOXES + "[$.a]\n", r"tasks\.ocr\.boxes must be a mapping with path, text and format"),
    (BOXES + "{text: $.a}\n", r"tasks\.ocr\.boxes needs a path to the boxes"),
    (BOXES + "{path: $.a, colour: red}\n", r"tasks\.ocr\.boxes has unknown key\(s\) colour"),
    (BOXES + "{path: elements}\n", r"tasks\.ocr\.boxes\.path must be a JSON path starting with '\$'"),
    (BOXES + "{path: '$.a[', format: xyxy}\n", r"tasks\.ocr\.boxes\.path is not a JSON path DuckDB reads"),
    (BOXES + "{path: $.a, text: 3}\n", r"tasks\.ocr\.boxes\.text must be a JSON path starting with '\$'"),
    (BOXES + "{path: $.a, format: ltrb}\n", r"tasks\.ocr\.boxes\.format must be one of xyxy, xywh, polygon"),
])
def test_an_invalid_hand_edited_file_names_the_problem(tmp_path, text, message):
    lake = init_lake(tmp_path)
    lake.schema_path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_schema(lake)


def test_a_boxes_rule_is_read_and_kept_when_the_rules_are_edited(tmp_path):
    lake = init_lake(tmp_path)
    text = lake.schema_path.read_text().replace(
        "  ocr:\n", "  ocr:\n    boxes: {path: '$.elements[*].bbox', text: '$.elements[*].text', format: xyxy}\n"
    ).replace("  kie:\n", "  kie:\n    boxes: {path: '$.fields[*].quad', format: polygon}\n"
    ).replace("  vqa:\n", "  vqa:\n    boxes: {path: '$.boxes'}\n")
    lake.schema_path.write_text(text)
    add_provider(lake, "mine")  # rewrites the file
    tasks = load_schema(lake).tasks
    assert tasks["ocr"].boxes == BoxRule("$.elements[*].bbox", "$.elements[*].text", "xyxy")
    assert tasks["kie"].boxes == BoxRule("$.fields[*].quad", None, "polygon")
    assert tasks["vqa"].boxes == BoxRule("$.boxes", None, "xyxy")  # the format taken when none is given
    assert tasks["layout"].boxes is None
    assert "format: xyxy" in lake.schema_path.read_text()


def test_names_check():
    from datalake.lake import check_name

    for good in ("coco_2017", "v1.0", "001", "a-b"):
        assert check_name(good, "dataset") == good
    for bad in ("", ".x", "..", "a/b", "a\\b", "é", "a b", "x" * 129, None):
        with pytest.raises(ValidationError):
            check_name(bad, "dataset")
