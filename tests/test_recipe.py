import pytest

from tltk.recipe import Recipe, RecipeError, load_recipe


def write(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_defaults_and_name_from_file(tmp_path):
    recipe = load_recipe(write(tmp_path, "data: {path: x}\n"))
    assert recipe.name == "r"
    assert recipe.backbone.name == "mobilenet_v3_small"
    assert recipe.train.callbacks.early_stopping.restore_best_weights is True


def test_unknown_key_names_path_line_and_closest(tmp_path):
    path = write(tmp_path, "name: t\ndata:\n  path: x\n  surce: folder\n")
    with pytest.raises(RecipeError) as e:
        load_recipe(path)
    msg = str(e.value)
    assert str(path) in msg
    assert "data.surce (line 4)" in msg
    assert "did you mean 'source'" in msg


def test_unknown_key_inside_phase_list(tmp_path):
    path = write(tmp_path, "name: t\nphases:\n  - train: head\n    learning_rat: 0.1\n")
    with pytest.raises(RecipeError, match=r"phases\.0\.learning_rat \(line 4\).*'learning_rate'"):
        load_recipe(path)


def test_wrong_type_is_reported_with_value(tmp_path):
    path = write(tmp_path, "name: t\nbackbone:\n  image_size: big\n")
    with pytest.raises(RecipeError, match=r"backbone\.image_size \(line 3\).*integer.*'big'"):
        load_recipe(path)


def test_set_overrides_are_typed_and_validated(tmp_path):
    path = write(tmp_path, "name: t\n")
    recipe = load_recipe(
        path, ["train.batch_size=8", "backbone.weights=none", "phases=[{epochs: 2}]"]
    )
    assert recipe.train.batch_size == 8
    assert recipe.backbone.weights is None
    assert recipe.phases[0].epochs == 2
    with pytest.raises(RecipeError, match="train.batch_sise.*'batch_size'"):
        load_recipe(path, ["train.batch_sise=8"])
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        load_recipe(path, ["train.batch_size"])


def test_override_into_list_item(tmp_path):
    path = write(tmp_path, "name: t\nphases:\n  - {epochs: 1}\n  - {epochs: 1}\n")
    recipe = load_recipe(path, ["phases.1.epochs=5"])
    assert [p.epochs for p in recipe.phases] == [1, 5]


def test_resolved_yaml_round_trips(tmp_path):
    recipe = load_recipe({"name": "t", "phases": [{"train": "top:2", "epochs": 2}]})
    again = load_recipe(write(tmp_path, recipe.to_yaml()))
    assert again == recipe
    assert isinstance(again, Recipe)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(write(tmp_path, "name: [unclosed\n"))


TWO_PHASES = "name: t\ntrain:\n  batch_size: 8\nphases:\n  - {epochs: 1}\n  - {epochs: 1}\n"


@pytest.mark.parametrize(
    "item, expected",
    [
        ("phases.5.epochs=3", r"phases has indices 0\.\.1; there is no item 5\."),
        ("phases.x.epochs=3", r"phases is a list \(indices 0\.\.1\), and 'x' is not an index"),
        ("phases.-1.epochs=3", r"'-1' is not an index"),
        ("phases.2=[]", r"there is no item 2\. .*--set 'phases=\[\.\.\.\]'"),
        ("name.x=1", r"name is a value \('t'\), not a section"),
        ("train..x=1", r"empty part"),
        ("name=[unclosed", r"'\[unclosed' is not valid YAML .*expected ',' or '\]'.*quote"),
        ("name=!!python/name:os.system", r"tag:yaml\.org,2002:python/name:os\.system.*Python"),
        ("phases=!!python/object/apply:os.system [echo x]", r"not valid YAML.*python/object"),
    ],
)
def test_bad_set_is_a_recipe_error_naming_the_override_not_a_line(tmp_path, item, expected):
    path = write(tmp_path, TWO_PHASES)
    with pytest.raises(RecipeError, match=expected) as e:
        load_recipe(path, [item])
    msg = str(e.value)
    assert msg.startswith(f"--set {item!r}: ")
    assert "line" not in msg  # neither the recipe's lines nor the YAML mark inside the value


def test_invalid_set_value_cites_the_override_and_file_errors_keep_their_line(tmp_path):
    path = write(tmp_path, TWO_PHASES + "backbone:\n  image_size: big\n")
    with pytest.raises(RecipeError) as e:
        load_recipe(path, ["train.batch_size=many", "phases=[{epochs: x}]"])
    lines = str(e.value).splitlines()
    assert lines[0] == f"{path}: invalid recipe"
    by_key = {line.split(" (")[0].strip(): line for line in lines[1:]}
    assert "backbone.image_size (line 8): " in by_key["backbone.image_size"]  # from the file
    assert "(--set 'train.batch_size=many'): " in by_key["train.batch_size"]
    assert "(--set 'phases=[{epochs: x}]'): " in by_key["phases.0.epochs"]
    assert "line" not in by_key["train.batch_size"] + by_key["phases.0.epochs"]


def test_set_fills_empty_sections_and_normalises_indices(tmp_path):
    path = write(tmp_path, TWO_PHASES + "augment:\n")  # an empty section loads as null
    recipe = load_recipe(path, ["augment.mixup=0.2", "phases.01.epochs=4"])
    assert recipe.augment.mixup == 0.2 and recipe.phases[1].epochs == 4
    with pytest.raises(RecipeError, match=r"phases\.1\.epochs \(--set 'phases\.01\.epochs=x'\)"):
        load_recipe(path, ["phases.01.epochs=x"])


def test_set_on_a_dict_recipe_leaves_the_callers_dict_alone():
    source = {"name": "t", "train": {"batch_size": 8}}
    assert load_recipe(source, ["train.batch_size=16"]).train.batch_size == 16
    assert source == {"name": "t", "train": {"batch_size": 8}}


def test_head_type_is_checked_against_the_registry_and_resolved(tmp_path):
    path = write(tmp_path, "name: t\nhead:\n  type: detection\n")
    with pytest.raises(RecipeError, match=r"head\.type \(line 3\).*one of classification, multil"):
        load_recipe(path)
    with pytest.raises(RecipeError, match="data.multi_label: a regression head"):
        load_recipe({"name": "t", "head": {"type": "regression"}, "data": {"multi_label": True}})
    # data.multi_label alone makes the whole run multi-label, as head.type: multilabel does.
    both = [load_recipe({"name": "t", "data": {"multi_label": True}}),
            load_recipe({"name": "t", "head": {"type": "multilabel"}})]  # fmt: skip
    assert [(r.head_type, r.multi_label) for r in both] == [("multilabel", True)] * 2
    plain = load_recipe({"name": "t", "head": {"type": "regression"}})
    assert (plain.head_type, plain.multi_label) == ("regression", False)


def test_modality_and_its_deprecated_name_task(tmp_path):
    import hashlib
    import json
    import warnings

    from tltk.recipe import schema
    from tltk.runs import fingerprint

    assert load_recipe({"name": "t"}).modality == "image"
    path = write(tmp_path, "name: t\nmodality: audio\n")
    with pytest.raises(RecipeError, match=r"modality \(line 2\): .*one of image, text"):
        load_recipe(path)
    schema._warn_task_key.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = [load_recipe({"name": "t", "task": "text"}) for _ in range(2)]
        load_recipe({"name": "t", "task": "text", "modality": "text"})  # the same: fine
    assert [r.modality for r in old] == ["text", "text"]
    assert [type(w.message) for w in caught] == [FutureWarning]  # once per process
    assert "modality" in str(caught[0].message) and "task" not in old[0].model_dump()
    with pytest.raises(RecipeError, match="`task: text` .* disagrees with `modality: image`"):
        load_recipe({"name": "t", "task": "text", "modality": "image"})
    # A run started before the rename recorded the fingerprint of its recipe under `task`; the
    # same recipe still has that fingerprint, so the run is resumed rather than started anew.
    dump = old[0].model_dump(mode="json")
    dump["train"].pop("verbose")
    dump["task"] = dump.pop("modality")
    del dump["replay"], dump["continue_from"]  # sections added since, unused here
    dump.pop("tune")  # recipes of then had no `tune` section
    del dump["train"]["threads"], dump["backbone"]["features_from"]  # nor these keys
    before = hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()[:16]
    assert fingerprint(old[0]) == before
    # Set, the key is part of what a run is.
    threaded = load_recipe({"name": "t", "task": "text", "train": {"threads": 1}})
    cut = load_recipe({"name": "t", "task": "text", "backbone": {"features_from": "block5"}})
    assert len({fingerprint(threaded), fingerprint(cut), before}) == 3


def test_loading_a_recipe_does_not_import_tensorflow():
    """The head-type registry is names only: validating `head.type` loads no spec."""
    import subprocess
    import sys

    code = (
        "import sys; from tltk.recipe import load_recipe; "
        "load_recipe({'name': 't', 'head': {'type': 'multilabel'}}); "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
