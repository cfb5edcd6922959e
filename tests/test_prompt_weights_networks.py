"""Extra-network strengths as units: parsing, rendering, bounds and bad input."""
import numpy as np
import pytest

from prompt_pinning.prompt.attention import PromptError
from prompt_pinning.prompt.networks import NETWORK_REACH, check_names
from prompt_pinning.prompt.tokenizers import ClipBpeTokenizer
from prompt_pinning.prompt.weights import MAX_UNITS, PromptVector, check_zero_offsets


@pytest.fixture(scope="module")
def clip():
    return ClipBpeTokenizer()


def vector(clip, positive, negative="", **options):
    return PromptVector.from_prompts(positive, negative, clip, networks=True, **options)


def kinds(v):
    return [(u.kind, u.text, u.base_weight, u.prompt) for u in v.units]


PROMPTS = [
    "a red circle <lora:style:0.8>",
    "<lora:style:0.8:0.5> a red circle, <hypernet:grain:1>",
    "a red circle <lora:style:te=0.7:unet=1.2> <lora:other> BREAK blue",
    "a red circle <lyco:thing:unet=0.3:dyn=4>  <lora:x:  0.25 >",
]


def test_units_per_tag(clip):
    v = vector(clip, "<lora:style:0.8:0.5> a circle <hypernet:grain> <lora:solo>",
               "blurry <lora:neg:-0.5> <lora:split:te=0.2:unet=0.3>")
    assert kinds(v) == [
        ("word", "a", 1.0, "positive"), ("word", "circle", 1.0, "positive"),
        ("lora te", "style", 0.8, "positive"), ("lora unet", "style", 0.5, "positive"),
        ("hypernet", "grain", 1.0, "positive"), ("lora", "solo", 1.0, "positive"),
        ("word", "blurry", 1.0, "negative"),
        ("lora", "neg", -0.5, "negative"),
        ("lora te", "split", 0.2, "negative"), ("lora unet", "split", 0.3, "negative"),
    ]


def test_off_by_default_keeps_tags_fixed(clip):
    v = PromptVector.from_prompts("a circle <lora:style:0.8>", "", clip)
    assert [u.kind for u in v.units] == ["word", "word"]


@pytest.mark.parametrize("positive", PROMPTS)
def test_zero_offsets_give_back_the_users_text(clip, positive):
    negative = "blurry <lora:neg:0.123456789>"
    v = vector(clip, positive, negative)
    assert v.render() == (positive, negative)
    check_zero_offsets(v, clip)


def test_offsets_rewrite_only_the_strengths(clip):
    v = vector(clip, "a circle <lora:style:0.8:0.5> <hypernet:grain> <lora:solo>", "x <lora:split:unet=0.3>")
    offsets = np.zeros(v.size)
    by_kind = {(u.kind, u.text): i for i, u in enumerate(v.units)}
    offsets[by_kind["lora te", "style"]] = 0.25
    offsets[by_kind["lora unet", "style"]] = -0.75
    offsets[by_kind["hypernet", "grain"]] = -1.0
    offsets[by_kind["lora", "solo"]] = 0.5
    offsets[by_kind["lora te", "split"]] = -0.5
    positive, negative = v.render(offsets)
    assert positive == "a circle <lora:style:1.05:-0.25> <hypernet:grain:0> <lora:solo:1.5>"
    assert negative == "x <lora:split:unet=0.3:te=0.5>"
    rows = v.unit_rows(offsets)
    assert [r.pinned_weight for r in rows if r.kind != "word"] == pytest.approx([1.05, -0.25, 0.0, 1.5, 0.5, 0.3])


def test_one_strength_moved_leaves_the_other_as_written(clip):
    v = vector(clip, "a circle <lora:style:0.80:0.50>")
    offsets = np.zeros(v.size)
    offsets[-1] = 0.1
    assert v.render(offsets)[0] == "a circle <lora:style:0.80:0.6>"


def test_bounds_fit_strengths(clip):
    v = vector(clip, "a circle <lora:style:0.8> <lora:edge:9.5>")
    low, high = v.offset_bounds()
    assert low[2:] == pytest.approx([-NETWORK_REACH, -NETWORK_REACH])
    assert high[2:] == pytest.approx([NETWORK_REACH, 0.5])  # the range's end (10) comes first
    assert low[0] < -50 and high[0] > 50  # words keep the weight limit
    narrow = vector(clip, "a circle <lora:style:0.3>", strength_range=(0.0, 2.0))
    assert narrow.offset_bounds()[0][-1] == pytest.approx(-0.3)


def test_strengths_at_the_ends_of_the_range_pass_the_zero_offset_check(clip):
    check_zero_offsets(vector(clip, "a circle <lora:style:10> <lora:low:-10>"), clip)


def test_strength_outside_the_range_is_refused(clip):
    with pytest.raises(PromptError, match=r"<lora:style:12>.*outside the renderer's range -10 .. 10"):
        vector(clip, "a circle <lora:style:12>")
    with pytest.raises(PromptError, match=r"<lora:style:-0.5>.*range 0 .. 2"):
        vector(clip, "a circle <lora:style:-0.5>", strength_range=(0.0, 2.0))
    v = vector(clip, "a circle <lora:style:0.5>", strength_range=(0.0, 2.0))
    with pytest.raises(PromptError, match=r"strength -0.5, outside the renderer's range 0 .. 2"):
        v.render([0, 0, -1.0])


@pytest.mark.parametrize("tag, message", [
    ("<lora:style:strong>", r"strength 'strong' is not a number"),
    ("<lora:style:nan>", r"not a finite number"),
    ("<lora::1>", r"names no network"),
])
def test_bad_tags(clip, tag, message):
    with pytest.raises(PromptError, match=message):
        vector(clip, f"a circle {tag}")


def test_unknown_name_names_what_the_renderer_has(clip):
    v = vector(clip, "a circle <lora:palette:1>", "<lora:pallete:0.5> <hypernet:grain>")
    with pytest.raises(PromptError, match=r"negative prompt: <lora:pallete:0.5>.*no LoRA named 'pallete'; "
                                          r"it has: palette, size"):
        check_names(v.network_units(), {"lora": ["size", "palette"]})
    with pytest.raises(PromptError, match=r"no hypernetwork named 'grain'; it has: none"):
        check_names(v.network_units(), {"lora": ["palette", "pallete"], "hypernet": []})
    check_names(v.network_units(), {"lora": ["palette", "pallete"]})  # a kind not listed is not checked


def test_twenty_networks_stay_within_the_unit_cap(clip):
    tags = " ".join(f"<lora:net{i}:0.{i % 9 + 1}>" for i in range(20))
    v = vector(clip, f"a red circle on a blue background {tags}")
    assert v.size == 27 <= MAX_UNITS
    assert v.render() == (f"a red circle on a blue background {tags}", "")
    words = " ".join(f"w{i}" for i in range(140))
    with pytest.raises(PromptError, match=r"160 pinnable units .*and 20 network strengths.*at most 150"):
        vector(clip, f"{words} {tags}")


def test_tags_only_prompt_is_pinnable(clip):
    v = vector(clip, "<lora:style:0.8>")
    assert kinds(v) == [("lora", "style", 0.8, "positive")]
    with pytest.raises(PromptError, match="nothing to pin"):
        PromptVector.from_prompts("<lora:style:0.8>", "", clip)


def test_table_shows_the_kind(clip):
    v = vector(clip, "circle <lora:style:0.8:0.5>")
    lines = v.table([0.0, 0.1, 0.0]).splitlines()
    assert lines[0].split() == ["#", "prompt", "kind", "unit", "base", "offset", "weight"]
    assert lines[2].split() == ["1", "positive", "lora", "te", "style", "0.8", "+0.1000", "0.9"]


def test_maps_and_plots_label_a_strength_with_its_kind(clip):
    from prompt_pinning.reports.plot_data import unit_labels
    from prompt_pinning.search.start_from import map_labels

    rows = vector(clip, "circle <lora:style:0.8:0.5>", "blur <hypernet:grain:1>").unit_rows()
    assert map_labels(rows) == ["circle", "lora te style", "lora unet style", "blur (neg)", "hypernet grain (neg)"]
    assert unit_labels(rows)[1:3] == ["2:lora te style", "3:lora unet style"]
