"""The architecture's rules: the core never imports dagster; packages come from this repo."""

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_when_steps_are_parsed_then_none_imports_dagster():
    offenders = []
    for path in sorted((REPO / "pipelines" / "steps").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "dagster"]
    assert offenders == []


def test_when_steps_import_then_no_upper_layer_is_imported():
    for path in sorted((REPO / "pipelines" / "steps").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] not in {"assets", "checks", "resources"}, path


@pytest.mark.parametrize("package", ["assets", "resources", "checks", "pipelines"])
def test_when_package_is_imported_then_it_comes_from_this_repository(package):
    module = importlib.import_module(package)
    assert Path(module.__file__).resolve().is_relative_to(REPO), module.__file__


def test_when_dagster_home_is_listed_then_only_dagster_yaml_is_tracked():
    import subprocess

    tracked = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "dagster_home"], capture_output=True, text=True
    ).stdout.split()
    assert tracked in ([], ["dagster_home/dagster.yaml"])
    text = (REPO / "dagster_home" / "dagster.yaml").read_text()
    assert "telemetry:\n  enabled: false" in text


def test_when_the_code_location_loads_then_every_asset_has_checks_and_a_description():
    import dagster as dg

    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {
        "raw_corpus",
        "scrubbed_corpus",
        "curated_corpus",
        "training_corpus",
        "dp_lora_adapter",
        "privacy_audit",
        "registered_model",
        "compliance_report",
    } <= keys
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, key
        assert node.group_name != "default", key
    assert defs.resolve_job_def("sovtune_main") is not None
    dg.Definitions.validate_loadable(defs)


def test_when_the_code_location_loads_then_each_drop_is_a_partition_of_the_drop_job():
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    per_drop = {"raw_corpus", "raw_quarantine", "scrubbed_corpus", "curated_corpus"}
    for key in graph.get_all_asset_keys():
        partitions = graph.get(key).partitions_def
        name = key.to_user_string()
        assert (partitions is not None and partitions.name == "data_drop") == (name in per_drop)
    drop_job = defs.resolve_job_def("sovtune_drop")
    assert drop_job.partitions_def.name == "data_drop"
    assert drop_job.executor_def.name == "multiprocess"
    assert defs.get_sensor_def("data_drops").job_name == "sovtune_drop"
