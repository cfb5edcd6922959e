"""The option schema: one source for PinningConfig, the command line, the WebUI and the docs."""
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from prompt_pinning.cli import build_parser, config_from_args
from prompt_pinning.config import ConfigError, PinningConfig
from prompt_pinning.search.optimizer import CmaOptimizer, SizeLimitedOptimizer
from prompt_pinning.options import (DEFAULTS, GENERATION_DEFAULTS, MAX_IMAGES_PER_GENERATION, OPTION, OPTIONS,
                                    cma_constants, normalize)
from prompt_pinning.rendering import GenerationSettings

REPO = Path(__file__).resolve().parent.parent
NOT_OPTIONS = {"positive", "negative", "generation", "outdir"}  # the run's inputs, not options


def test_committed_option_tables_match_the_schema():
    result = subprocess.run([sys.executable, str(REPO / "tools" / "option_tables.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_config_fields_are_the_schema_options_with_its_defaults():
    config = PinningConfig(positive="x")
    names = [f.name for f in fields(PinningConfig) if f.name not in NOT_OPTIONS]
    assert sorted(names) == sorted(DEFAULTS)
    assert {name: getattr(config, name) for name in DEFAULTS} == DEFAULTS
    assert config.generation == GenerationSettings(**GENERATION_DEFAULTS) == GenerationSettings(seed=1)


def test_command_line_and_python_get_the_same_defaults():
    from_cli = config_from_args(build_parser().parse_args([]))
    from_python = PinningConfig(positive=from_cli.positive, negative=from_cli.negative).validate()
    assert from_cli.generation == from_python.generation
    for option in OPTIONS:
        assert getattr(from_cli, option.name) == getattr(from_python, option.name) or option.name == "targets"
    assert list(from_cli.targets) == [] and tuple(from_python.targets) == ()


def test_every_option_reaches_the_config_from_its_command_line_flag(tmp_path):
    matrix = tmp_path / "c.json"
    matrix.write_text("[[2, 0], [0, 3]]")
    argv = ["--target", "t.png", "--units", "phrase", "--no-cma-logging", "--cma-seed", "7", "--generations", "3",
            "--initial-std", "0.2", "--initial-radius", "0.2", "--lambda", "6", "--mu", "2", "--weights", "equal",
            "--cs", "0.3", "--damps", "2", "--ccum", "0.4", "--ccov1", "0.1", "--ccovmu", "0.2",
            "--cmatrix", str(matrix), "--size-limit", "1.5", "--size-limit-error", "0.2",
            "--size-limit-weight", "4", "--no-hyperbatch-weights", "--no-hyperbatch-force",
            "--hyperbatch-weight-type", "Polynomial", "--hyperbatch-weight-scale", "2",
            "--max-images-per-call", "16", "--resume", "run", "--validation-batches", "0",
            "--seed-schedule", "fixed", "--loss-variant", "consistency", "--start-from", "run:2",
            "--target-mask", "m.png", "--target-mask-source", "inpaint mask", "--wanted-tags", "red",
            "--unwanted-tags", "blue", "--tag-loss-weight", "2", "--tag-loss-only", "--tagger", "builtin",
            "--fade-guard", "3.5", "--fade-tolerance", "0.2", "--fade-guard-form", "windows", "--network-units"]
    config = config_from_args(build_parser().parse_args(argv))
    changed = {option.name for option in OPTIONS if option.name == "cmatrix"
               or getattr(config, option.name) != option.default}
    assert changed == {option.name for option in OPTIONS}  # every flag moved its option
    assert config.cmatrix.tolist() == [[2, 0], [0, 3]] and config.resume == Path("run")
    assert config.validation_batches == 0 and config.loss_variant == "consistency" and config.fade_guard == 3.5
    assert config.fade_tolerance == 0.2 and config.fade_guard_form == "windows"
    inline = config_from_args(build_parser().parse_args(["--cmatrix", "[[1]]"]))
    assert inline.cmatrix.tolist() == [[1.0]]


def test_zero_means_auto_in_one_place_for_every_auto_option():
    for option in OPTIONS:
        if option.auto:
            assert normalize(option, 0 if option.kind in ("int", "float") else "") is None, option.name
        elif option.kind in ("int", "float"):
            assert normalize(option, 0) == 0, option.name  # 0 is a real value here
    config = PinningConfig(positive="x", generations=0, lambda_=0, cs=0.0, cmatrix="").validate()
    assert config.generations is None and config.lambda_ is None and config.cs is None and config.cmatrix is None


@pytest.mark.parametrize("n,weights", [(1, "superlinear"), (5, "linear"), (40, "equal"), (200, "superlinear")])
def test_documented_cma_formulas_are_what_deap_uses(n, weights):
    optimizer = CmaOptimizer(PinningConfig(positive="x", weights=weights).validate(), n, cma_seed=1)
    resolved = optimizer.resolved
    expected = cma_constants(n, resolved["mu"], weights)
    for name in ("mueff", "cs", "damps", "ccum", "ccov1", "ccovmu"):
        assert resolved[name] == pytest.approx(expected[name], rel=1e-12), name


@pytest.mark.parametrize("kw,fragment", [
    (dict(lambda_=1), "lambda_: must be >= 2"),
    (dict(generations=10**9), "generations: must be <= 10,000"),
    (dict(cma_seed=2**70), "cma_seed: must be <= 4,294,967,295"),
    (dict(hyperbatch_weight_scale=1e308), "hyperbatch_weight_scale: must be <= 10"),
    (dict(initial_std=1e6), "initial_std: must be <= 10"),
    (dict(size_limit=1e308), "size_limit: must be <= 1,000"),
    (dict(max_images_per_call=10**9), "max_images_per_call: must be <= 1,024"),
    (dict(lambda_=200), "batch size x lambda_ = 8 x 200 = 1,600 images per generation; the limit is 1,024"),
    (dict(mu=600, size_limit=1.0), "batch size x mu = 8 x 600"),
    (dict(validation_batches=-1), "validation_batches: must be >= 0"),
    (dict(seed_schedule="random"), "seed_schedule: must be one of fixed, rotating"),
    (dict(loss_variant="all"), "loss_variant: must be one of union, target, consistency"),
    (dict(fade_guard=-1.0), "fade_guard: must be >= 0"),
    (dict(fade_guard=1e9), "fade_guard: must be <= 100"),
    (dict(generation=GenerationSettings(seed=1, steps=10**6)), "steps: must be <= 1,000"),
])
def test_limits_name_the_option_and_the_bound(kw, fragment):
    with pytest.raises(ConfigError) as info:
        PinningConfig(positive="x", **kw).validate()
    assert fragment in str(info.value)


def test_the_smallest_population_deap_accepts_runs_and_auto_populations_are_capped():
    config = PinningConfig(positive="x", lambda_=2, cma_seed=2**32 - 1).validate()
    optimizer = CmaOptimizer(config, 3, cma_seed=config.cma_seed)
    for _ in range(3):
        population = optimizer.ask()
        for candidate in population:
            optimizer.assign(candidate, float(np.sum(np.square(candidate))))
        optimizer.tell(population)
    assert optimizer.resolved["mu"] == 1 and np.isfinite(optimizer.distribution().covariance).all()
    big_batch = PinningConfig(positive="x", generation=GenerationSettings(seed=1, batch_size=256)).validate()
    with pytest.raises(ConfigError, match=f"the limit is {MAX_IMAGES_PER_GENERATION:,}"):
        CmaOptimizer(big_batch, 5, cma_seed=1)  # auto lambda_ 8 x 256 images
    with pytest.raises(ConfigError, match="batch size x lambda_"):
        SizeLimitedOptimizer(PinningConfig(positive="x", size_limit=1.0,
                                           generation=GenerationSettings(seed=1, batch_size=256)).validate(), 5, 1)


def test_script_args_hints_state_limits_and_formulas():
    from prompt_pinning_webui.ui import hint

    assert "Range: 0 .. 10,000" in hint(OPTION["generations"])
    assert "int(4 + 3 ln N)" in hint(OPTION["lambda_"])
    assert "base64" in hint(OPTION["targets"])  # the API note reaches the WebUI hint


def test_numpy_numbers_are_accepted_as_plain_numbers():
    config = PinningConfig(positive="x", generations=np.int64(3), initial_std=np.float32(0.5)).validate()
    assert type(config.generations) is int and config.generations == 3
    assert type(config.initial_std) is float and config.initial_std == 0.5
    with pytest.raises(ConfigError, match="generations: must be a whole number"):
        PinningConfig(positive="x", generations=np.float64(2.5)).validate()


def test_a_deeply_nested_cmatrix_is_a_clear_error_not_a_recursion_error():
    from prompt_pinning.options import ConfigError

    deep_list: list = [0.0]
    for _ in range(100_000):
        deep_list = [deep_list]
    for value in ("[" * 100_000 + "]" * 100_000, [deep_list], [[deep_list]]):
        with pytest.raises(ConfigError, match="^cmatrix: ") as error:
            PinningConfig(positive="x", cmatrix=value).validate()
        assert len(str(error.value)) < 300


def test_the_saved_config_names_no_server_path(tmp_path):
    config = PinningConfig(positive="x", targets=[tmp_path / "secret" / "t.png"], target_mask=str(tmp_path / "m.png"),
                           resume=tmp_path / "outputs" / "txt2img-images" / "prompt_pins" / "00000003")
    saved = config.to_dict()
    assert saved["targets"] == ["t.png"] and saved["target_mask"] == "m.png"
    assert saved["resume"] == "txt2img-images/prompt_pins/00000003"
    assert str(tmp_path) not in __import__("json").dumps(saved)
