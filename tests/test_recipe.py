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
