"""Tag targets: the tag loss, its parsing, its hyperbatch levels and the built-in model's exact tagger."""
import numpy as np
import pytest
import torch

from prompt_pinning.builtin import BuiltinRenderer
from prompt_pinning.builtin.tags import TAGS
from prompt_pinning.config import ConfigError, PinningConfig
from prompt_pinning.score.levels import combine_levels
from prompt_pinning.score.loss import PinningLoss
from prompt_pinning.rendering import GenerationSettings
from prompt_pinning.score.tags import TaggedLoss, TagTarget, TaggerUnavailable, parse_tag_list, tag_target

TARGET = TagTarget(wanted=(("red", 1.0), ("circle", 2.0)), unwanted=(("blue", 0.5),))


def test_the_tag_loss_is_zero_when_wanted_tags_are_certain_and_unwanted_absent():
    p = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])  # columns: red, circle, blue
    assert TARGET.tags == ["red", "circle", "blue"]
    assert np.array_equal(TARGET.image_losses(p), [0.0, 0.0])


@pytest.mark.parametrize("column, step, direction", [(0, -0.25, 1.0), (1, -0.25, 2.0), (2, 0.25, 0.5)])
def test_the_tag_loss_moves_the_right_way_with_each_probability(column, step, direction):
    p = np.array([[0.5, 0.5, 0.5]])
    moved = p.copy()
    moved[0, column] += step
    change = TARGET.image_losses(moved)[0] - TARGET.image_losses(p)[0]
    assert change == pytest.approx(abs(step) * direction)  # rises by weight x step, never falls
    assert TARGET.image_losses(np.array([[0.0, 0.0, 1.0]]))[0] == pytest.approx(1.0 + 2.0 + 0.5)  # the worst


def test_tag_lists_take_prompt_weights():
    assert parse_tag_list("red, (circle:1.5), [blue], (long_hair), ", "wanted_tags") == (
        ("red", 1.0), ("circle", 1.5), ("blue", pytest.approx(1 / 1.1)), ("long hair", pytest.approx(1.1)))
    for bad, fragment in (("(red:0)", "must be > 0"), ("(red:1.2", "cannot read"), ("(red:500)", "<= 100")):
        with pytest.raises(ValueError, match=f"wanted_tags: .*{fragment}"):
            parse_tag_list(bad, "wanted_tags")


def test_bad_tag_options_name_the_option():
    with pytest.raises(ConfigError, match="unwanted_tags: 'red' is also a wanted tag"):
        PinningConfig("x", wanted_tags="red", unwanted_tags="(red:2)").validate()
    with pytest.raises(ConfigError, match="tag_loss_only: .*needs wanted_tags"):
        PinningConfig("x", tag_loss_only=True).validate()
    with pytest.raises(ConfigError, match="tag_loss_weight: must be <= 100"):
        PinningConfig("x", wanted_tags="red", tag_loss_weight=1e9).validate()
    with pytest.raises(ConfigError, match="tagger: must be one of"):
        PinningConfig("x", tagger="clip").validate()


class TableTagger:
    """Probabilities given per image, for checking how the loss combines them."""

    name = "table"

    def __init__(self, table):
        self.table = np.asarray(table, dtype=np.float64)

    def probabilities(self, images, tags, batch=None):
        return self.table[:images.shape[0], :len(tags)]


def test_hyperbatch_levels_weigh_the_tag_loss_as_they_weigh_flip(crops):
    images = crops[:4]
    p = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    per_image = TARGET.image_losses(p)  # 0, 1, 2.5, 0
    traces = np.array([[0, 0], [0, 1], [2, 2], [2, 3]])
    image_loss = PinningLoss(weight_type="Exponential", weight_scale=1.0)
    tagged = TaggedLoss(image_loss, TARGET, TableTagger(p), weight=2.0).evaluate(images, traces)
    levels = [np.mean([per_image[:2].mean(), per_image[2:].mean()]), per_image.mean()]
    assert tagged.tag_value == pytest.approx(combine_levels(np.array(levels), "Exponential", 1.0))
    assert tagged.value == pytest.approx(image_loss.evaluate(images, traces).value + 2.0 * tagged.tag_value)
    alone = TaggedLoss(PinningLoss(hyperbatch_weights=False), TARGET, TableTagger(p), tags_only=True)
    assert alone.evaluate(images).value == pytest.approx(per_image.mean())
    assert alone.evaluate(images).tag_probabilities == pytest.approx({"red": 0.75, "circle": 0.75, "blue": 0.25})


SETTINGS = GenerationSettings(seed=3, batch_size=6, steps=8, width=32, height=32, cfg_scale=5.0, sampler="Euler")


def test_the_builtin_tagger_reads_the_prompt_back_and_changes_no_image():
    plain, tagged = BuiltinRenderer(), BuiltinRenderer(tags=True)
    (batch,) = tagged.render([("a red circle, on a blue background", "")], SETTINGS)
    assert torch.equal(batch.images, plain.render([("a red circle, on a blue background", "")], SETTINGS)[0].images)
    assert set(batch.tag_probabilities) == set(TAGS)
    mean = {tag: float(p.mean()) for tag, p in batch.tag_probabilities.items()}
    assert mean["red"] > 0.5 and mean["blue background"] > 0.5 and mean["circle"] > 0.5
    assert mean["blue"] < 0.1 and mean["red background"] < 0.1 and mean["triangle"] < 0.2
    probabilities = tagged.tagger("builtin").probabilities(batch.images, ["red", "blue background"], batch)
    assert probabilities.shape == (6, 2) and ((probabilities >= 0) & (probabilities <= 1)).all()


def test_the_builtin_tagger_follows_the_weights():
    renderer = BuiltinRenderer(tags=True)
    low, high = renderer.render([("a (red:0.6) or blue square", ""), ("a (red:1.6) or blue square", "")], SETTINGS)
    assert high.tag_probabilities["red"].mean() > low.tag_probabilities["red"].mean()
    assert high.tag_probabilities["blue"].mean() < low.tag_probabilities["blue"].mean()


def test_unknown_tags_and_webui_taggers_are_clear_errors():
    renderer = BuiltinRenderer()
    with pytest.raises(ValueError, match="no tag 'long hair'"):
        config = PinningConfig("a red circle", wanted_tags="long_hair", generation=SETTINGS)
        renderer.tagger("auto").probabilities(torch.zeros(1, 3, 32, 32), tag_target(config).tags,
                                              renderer.render([("red", "")], SETTINGS.with_(batch_size=1))[0])
    with pytest.raises(TaggerUnavailable, match="WebUI only"):
        renderer.tagger("deepbooru")
