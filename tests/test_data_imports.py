"""The data layer's seams: an acyclic import graph, leaf helpers, one registry of readers."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import tltk.data
from tltk.data import sources
from tltk.data.errors import DataError
from tltk.recipe import DataConfig

DATA = Path(tltk.data.__file__).parent


def module_name(path: Path) -> str:
    parts = ["tltk", *path.relative_to(DATA.parent).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(DATA.rglob("*.py"))}


def data_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) for each `tltk.data` import anywhere in the file, function bodies
    included (a deferred import is still an edge). `from pkg import sub` with `sub` a module
    is an edge to `pkg.sub`, other names an edge to `pkg`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.startswith("tltk.data")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tltk.data"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append((sub, "") if sub in MODULES else (node.module, alias.name))
    return found


def graph() -> dict[str, set[str]]:
    return {m: {target for target, _ in data_imports(p)} - {m} for m, p in MODULES.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_data_layer_import_graph_is_acyclic():
    edges = graph()
    assert {"tltk.data.sources", "tltk.data.labels", "tltk.data.images"} <= set(edges)
    assert find_cycle(edges) is None


def test_no_module_imports_a_private_name_of_another():
    private = [
        f"{module}: {target}.{name}"
        for module, path in MODULES.items()
        for target, name in data_imports(path)
        if name.startswith("_")
    ]
    assert private == []


def test_readers_import_only_leaves_never_the_registry_or_each_other():
    readers = {
        m for per in sources.SOURCES.values() for m in (p.split(":")[0] for p in per.values())
    }
    edges = graph()
    for reader in readers:
        assert "tltk.data.sources" not in edges[reader], reader
        assert not edges[reader] & (readers - {reader}), reader
        for target in edges[reader]:  # leaves: they import no reader-level module in turn
            assert not edges[target] & readers, (reader, target)


def test_every_registered_reader_honours_the_contract():
    for modality, readers in sources.SOURCES.items():
        for name in readers:
            reader = sources.get_reader(modality, name)
            params = list(inspect.signature(reader).parameters)
            assert params == ["cfg", "label_kind"], (modality, name, params)
            assert inspect.signature(reader).return_annotation in (
                "SourceData",
                tltk.data.SourceData,
            )


def test_an_unknown_source_for_a_modality_names_the_known_ones():
    with pytest.raises(
        DataError, match=r"'folder' is not a source of text data \(use text, csv, tfds, tfrecord\)"
    ):
        sources.read_source(DataConfig(source="folder"), "text", "class")
    with pytest.raises(DataError, match=r"no data sources for 'audio' data; known: image, text"):
        sources.get_reader("audio", "folder")


def test_readers_are_imported_only_when_used(tmp_path):
    # The registry holds names: reading a folder imports neither the tfds readers nor tfds.
    from helpers import make_image_folder

    root = make_image_folder(tmp_path / "images", {"a": 1, "b": 1})
    code = (
        "import sys; from tltk.data.sources import read_source; "
        "from tltk.recipe import DataConfig; "
        f"source = read_source(DataConfig(source='folder', path={str(root)!r}), 'image', 'class'); "
        "print(source.class_names, sorted(m for m in sys.modules if 'tfds' in m or "
        "m.startswith('tensorflow_datasets')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "['a', 'b'] []"
