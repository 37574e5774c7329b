"""Multi-phase training recipes (``dllm train --recipe``): validation, round trip, and that a recipe run is the
same run as the chain of ``dllm train`` commands it records, interrupted or not."""
import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from distill import reference
from distill.recipe import TrainRecipe, load_recipe

TINY_BASE = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64, "batch_size": 2,
             "bf16": False, "warmup": 0}
TWO_PHASES = {"base": {**TINY_BASE, "lr": 1e-3, "min_lr_ratio": 1.0},
              "phases": [{"until": 2, "aux_tasks": "copy_bare=1.0"},
                         {"until": 4, "task_weights": "waiting_line/copy=3", "zero_shot_fraction": 0.5,
                          "decay_start": 2, "min_lr_ratio": 0.1}]}
TINY_FLAGS = ["--hidden-size", "32", "--num-layers", "1", "--num-heads", "2", "--intermediate-size", "64",
              "--batch-size", "2", "--warmup", "0", "--no-bf16", "--no-progress", "--save-every", "2"]


def _write(tmp_path, data, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _weights(run):
    return load_file(str(run / "model" / "model.safetensors"))


def test_phases_become_configs_over_absolute_steps_and_round_trip():
    recipe = TrainRecipe.from_dict(TWO_PHASES)
    first, second = recipe.configs(out="runs/x", threads=1)
    assert (first.steps, second.steps, recipe.steps) == (2, 4, 4)
    assert first.aux_tasks == "copy_bare=1.0" and second.aux_tasks == ""  # a phase sets only what it lists
    assert second.task_weights == "waiting_line/copy=3" and second.decay_start == 2 and first.min_lr_ratio == 1.0
    assert first.out == second.out == "runs/x" and first.hidden_size == 32
    assert TrainRecipe.from_dict(recipe.to_dict()) == recipe


@pytest.mark.parametrize("data, words", [
    ({"phases": []}, "no phases"),
    ({"phases": [{"until": 3}, {"until": 3}]}, "phases[1].until"),
    ({"phases": [{"aux_tasks": "copy_bare=1.0"}]}, "phases[0].until"),
    ({"phases": [{"until": 3, "learning_rate": 1e-3}]}, "phases[0].learning_rate: unknown"),
    ({"phases": [{"until": 3, "steps": 5}]}, "phases[0].steps"),
    ({"base": {"out": "elsewhere"}, "phases": [{"until": 3}]}, "base.out"),
    ({"phases": [{"until": 3}, {"until": 5, "batch_size": 8}]}, "phases[1].batch_size"),
    ({"phases": [{"until": 3, "min_lr_ratio": 0.0}]}, "phases[0] (until 3): min_lr_ratio"),
    ({"phases": [{"until": 3, "aux_tasks": "nope=0.5"}]}, "phases[0]"),
    ({"recipe": [], "phases": [{"until": 3}]}, "unknown top-level keys"),
])
def test_bad_recipes_name_what_is_wrong(data, words):
    with pytest.raises(ValueError, match=__import__("re").escape(words)):
        TrainRecipe.from_dict(data).configs(out="runs/x")


def test_shipped_reference_recipe_is_valid_and_ends_at_the_shipped_step():
    recipe = load_recipe("reference")
    configs = recipe.configs(out="runs/reference")
    assert [c.steps for c in configs] == sorted({c.steps for c in configs})
    assert configs[-1].hidden_size == 192 and configs[-1].num_layers == 6
    # the recipe ends where the committed state of the shipped weights (training/reference/) ends
    from pathlib import Path
    shipped = Path(__file__).resolve().parents[1] / "training" / "reference"
    last_logged = json.loads((shipped / "loss_log.jsonl").read_text().splitlines()[-1])["step"]
    assert recipe.steps == last_logged == json.loads((shipped / "train_config.json").read_text())["steps"]
    with pytest.raises(ValueError, match="no shipped recipe"):
        load_recipe("no-such-recipe")


def test_previous_reference_recipe_keeps_session_11s_one_cosine():
    # session 11 was one cosine (5e-4 from step 21,629 to 1e-5 at 26,200), stopped three times to add rows
    from distill.train import TrainConfig, lr_at

    configs = load_recipe("reference_v1").configs(out="runs/reference_v1")
    assert configs[-1].steps == 31000
    one_cosine = TrainConfig(steps=26200, lr=5e-4, warmup=0, decay_start=21629, min_lr_ratio=0.02)
    starts = [0] + [c.steps for c in configs]
    session11 = [(start, c) for start, c in zip(starts, configs) if c.decay_start == 21629 and start >= 22128]
    assert len(session11) == 4
    for start, c in session11:
        assert [lr_at(c, s) for s in range(start, c.steps)] == [lr_at(one_cosine, s) for s in range(start, c.steps)]


def test_recipe_run_equals_its_command_chain_and_resumes_between_phases(tmp_path):
    path = _write(tmp_path, TWO_PHASES)
    assert reference.main(["--recipe", str(path), "--out", str(tmp_path / "recipe"), "--no-progress",
                           "--save-every", "2"]) == 0
    # The same history as two resumed `dllm train` commands.
    chain = tmp_path / "chain"
    assert reference.main(["--out", str(chain), "--steps", "2", "--lr", "1e-3", "--min-lr-ratio", "1.0",
                           "--aux-tasks", "copy_bare=1.0"] + TINY_FLAGS) == 0
    assert reference.main(["--out", str(chain), "--steps", "4", "--lr", "1e-3", "--min-lr-ratio", "0.1",
                           "--decay-start", "2", "--task-weights", "waiting_line/copy=3",
                           "--zero-shot-fraction", "0.5"] + TINY_FLAGS) == 0
    # And the recipe stopped after its first phase, then run again (it resumes into the second phase).
    first_only = _write(tmp_path, {**TWO_PHASES, "phases": TWO_PHASES["phases"][:1]}, "first.yaml")
    assert reference.main(["--recipe", str(first_only), "--out", str(tmp_path / "resumed"), "--no-progress"]) == 0
    assert reference.main(["--recipe", str(path), "--out", str(tmp_path / "resumed"), "--no-progress"]) == 0
    want = _weights(tmp_path / "recipe")
    for run in (chain, tmp_path / "resumed"):
        got = _weights(run)
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)
    last = json.loads((tmp_path / "recipe" / "train_config.json").read_text())
    assert last["steps"] == 4 and last["task_weights"] == "waiting_line/copy=3"
    assert yaml.safe_load((tmp_path / "recipe" / "recipe.yaml").read_text()) == TWO_PHASES


def test_recipe_refuses_training_flags_it_would_override(tmp_path):
    path = _write(tmp_path, TWO_PHASES)
    with pytest.raises(ValueError, match="--lr, --aux-tasks"):
        reference.main(["--recipe", str(path), "--out", str(tmp_path / "r"), "--lr", "3e-4",
                        "--aux-tasks", "copy_bare=1.0"])


def test_extends_appends_phases_to_the_parent_and_keeps_its_base(tmp_path):
    parent = _write(tmp_path, TWO_PHASES, "parent.yaml")
    child = _write(tmp_path, {"extends": "parent.yaml", "phases": [{"until": 6, "aux_tasks": ""}]}, "child.yaml")
    recipe = load_recipe(child)
    assert recipe.base == load_recipe(parent).base
    assert recipe.phases == (*TWO_PHASES["phases"], {"until": 6, "aux_tasks": ""})
    assert [c.steps for c in recipe.configs(out="runs/x")] == [2, 4, 6]
    grandchild = _write(tmp_path, {"extends": str(child), "phases": [{"until": 8}]}, "grandchild.yaml")
    assert [p["until"] for p in load_recipe(grandchild).phases] == [2, 4, 6, 8]
    shipped = _write(tmp_path, {"extends": "reference", "phases": [{"until": 10**6}]}, "shipped.yaml")
    assert load_recipe(shipped).phases[:-1] == load_recipe("reference").phases


def test_from_step_branches_off_an_earlier_point_of_the_parent(tmp_path):
    _write(tmp_path, TWO_PHASES, "parent.yaml")
    probe = _write(tmp_path, {"extends": "parent.yaml", "from_step": 2, "phases": [{"until": 3, "lr": 1e-4}]},
                   "probe.yaml")
    recipe = load_recipe(probe)
    assert recipe.phases == (TWO_PHASES["phases"][0], {"until": 3, "lr": 1e-4})
    assert [c.steps for c in recipe.configs(out="runs/x")] == [2, 3]


@pytest.mark.parametrize("child, words", [
    ({"extends": "parent.yaml", "base": {"lr": 1e-4}, "phases": [{"until": 6}]}, "cannot set 'base'"),
    ({"extends": "parent.yaml", "phases": [{"until": 3}]}, "phases[2].until must be an integer step above"),
    ({"extends": "missing.yaml", "phases": [{"until": 6}]}, "no such file"),
    ({"extends": "child.yaml", "phases": [{"until": 6}]}, "'extends' cycle"),
    ({"extends": "parent.yaml", "from_step": 3, "phases": [{"until": 6}]}, "phase ends: [2, 4]"),
    ({"from_step": 2, "phases": [{"until": 6}]}, "has no 'extends'"),
])
def test_bad_extends_names_what_is_wrong(tmp_path, child, words):
    _write(tmp_path, TWO_PHASES, "parent.yaml")
    path = _write(tmp_path, child, "child.yaml")
    with pytest.raises(ValueError, match=__import__("re").escape(words)):
        load_recipe(path)
