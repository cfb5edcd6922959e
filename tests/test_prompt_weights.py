"""PromptVector: units, rendering, bad input, and the zero-offset guarantee."""
import numpy as np
import pytest

from prompt_pinning.prompt.attention import PromptError
from prompt_pinning.prompt.weights import PromptVector, check_zero_offsets, format_weight
from prompt_pinning.run.records import UnitRow
from prompt_pinning.prompt.tokenizers import ClipBpeTokenizer, host_encoding

S = 1 / 1.1


@pytest.fixture(scope="module")
def clip():
    return ClipBpeTokenizer()


def units(vector):
    return [(u.text, round(u.base_weight, 6), u.prompt) for u in vector.units]


def _corpus():
    with open("tests/data/prompts_corpus.txt", encoding="utf-8") as f:
        return [line for line in f.read().splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize(
    "positive, expected",
    [
        ("red car", [("red", 1), ("car", 1)]),
        ("(red) car", [("red", 1.1), ("car", 1)]),
        ("((red)) car", [("red", 1.21), ("car", 1)]),
        ("[red] car", [("red", round(S, 6)), ("car", 1)]),
        ("(red car:1.5)", [("red", 1.5), ("car", 1.5)]),
        ("((red:1.3)), car", [("red", 1.43), (",", 1), ("car", 1)]),
        ("a, b.", [("a", 1), (",", 1), ("b", 1), (".", 1)]),
        (r"\(artist\)", [("(", 1), ("artist", 1), (")", 1)]),
        ("blue-eyed 1girl don't", [("blue-eyed", 1), ("1girl", 1), ("don't", 1)]),
        ("cat <lora:x:0.8>, dog", [("cat", 1), (",", 1), ("dog", 1)]),
        ("cat BREAK (dog:0.5)", [("cat", 1), ("dog", 0.5)]),
        ("(unclosed words", [("unclosed", 1.1), ("words", 1.1)]),
        ("a(b:1)", [("ab", 1)]),
        ("(x:0)", [("x", 0)]),
    ],
)
def test_word_units(clip, positive, expected):
    vector = PromptVector.from_prompts(positive, "", clip)
    assert units(vector) == [(t, w, "positive") for t, w in expected]
    assert vector.size == len(expected)
    check_zero_offsets(vector, clip)


@pytest.mark.parametrize(
    "positive, expected",
    [
        ("a red car, blue sky", [("a red car", 1), ("blue sky", 1)]),
        ("a (red) car, (blue sky:1.2)", [("a", 1), ("red", 1.1), ("car", 1), ("blue sky", 1.2)]),
        ("one, two BREAK three", [("one", 1), ("two", 1), ("three", 1)]),
    ],
)
def test_phrase_units(clip, positive, expected):
    vector = PromptVector.from_prompts(positive, "", clip, unit_mode="phrase")
    assert units(vector) == [(t, w, "positive") for t, w in expected]
    check_zero_offsets(vector, clip)


def test_negative_units_come_after_positive(clip):
    vector = PromptVector.from_prompts("cat", "(blurry:1.4), text", clip)
    assert units(vector) == [("cat", 1, "positive"), ("blurry", 1.4, "negative"),
                             (",", 1, "negative"), ("text", 1, "negative")]
    np.testing.assert_allclose(vector.base_weights, [1, 1.4, 1, 1])


def test_textual_inversion_names_stay_whole(clip):
    vector = PromptVector.from_prompts("cat", "easy_negative_v2, blurry", clip,
                                       embeddings=["easy_negative_v2"])
    assert vector.units[1].text == "easy_negative_v2"
    check_zero_offsets(vector, clip, embeddings={"easy_negative_v2": 8})


def test_render_zero_offsets(clip):
    vector = PromptVector.from_prompts("a ((red:1.3)) car, <lora:x:0.8> BREAK [sky]", "(ugly:1.2)", clip)
    assert vector.render() == ("a (red:1.43) car, <lora:x:0.8> BREAK (sky:0.90909094)", "(ugly:1.2)")
    assert vector.render(np.zeros(vector.size)) == vector.render()


def test_render_offsets_abs_and_rounding(clip):
    vector = PromptVector.from_prompts("red car", "", clip)
    positive, negative = vector.render([-1.5, 0.123456])
    assert positive == "(red:0.5)(car:1.1235)"  # no blank between groups of different weights
    assert negative == ""
    np.testing.assert_allclose(vector.weights([-1.5, 0.123456]), [0.5, 1.1235])


def test_render_escapes_literal_brackets(clip):
    vector = PromptVector.from_prompts(r"\(x\) back\\slash", "", clip)
    positive, _ = vector.render(np.full(vector.size, 0.5))
    assert positive.startswith(r"(\(:1.5)(x:1.5)(\):1.5)")
    assert r"(\\:1.5)" in positive


def test_equal_neighbours_from_different_pieces_get_a_space(clip):
    vector = PromptVector.from_prompts("(blue)(eyes:1.2)", "", clip)
    assert vector.render()[0] == "(blue:1.1)(eyes:1.2)"
    positive, _ = vector.render([0.1, 0.0])
    assert positive == "(blue:1.2) (eyes:1.2)"
    check_zero_offsets(vector, clip)


def test_table_and_unit_rows(clip):
    vector = PromptVector.from_prompts("(red:1.2) car", "ugly", clip)
    table = vector.table([0.1, 0.0, -0.2])
    lines = table.splitlines()
    assert lines[0].split() == ["#", "prompt", "unit", "base", "offset", "weight"]
    assert lines[1].split() == ["0", "positive", "red", "1.2", "+0.1000", "1.3"]
    assert lines[3].split() == ["2", "negative", "ugly", "1", "-0.2000", "0.8"]
    rows = vector.unit_rows([0.1, 0.0, -0.2])
    assert all(isinstance(r, UnitRow) for r in rows)
    assert [(r.text, r.prompt, r.offset) for r in rows] == [("red", "positive", 0.1), ("car", "positive", 0.0),
                                                            ("ugly", "negative", -0.2)]
    assert rows[0].pinned_weight == pytest.approx(1.3)
    assert [r.offset for r in vector.unit_rows()] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("positive", ["", "   ", "<lora:a:1>", "<lora:a:1> <hypernet:b:0.5>", "BREAK"])
def test_nothing_to_pin(clip, positive):
    with pytest.raises(PromptError, match="nothing to pin"):
        PromptVector.from_prompts(positive, "", clip)


def test_empty_negative_has_no_units(clip):
    vector = PromptVector.from_prompts("cat", "", clip)
    assert [u.prompt for u in vector.units] == ["positive"]
    assert PromptVector.from_prompts("cat", "<lora:a:1>", clip).render() == ("cat", "<lora:a:1>")


@pytest.mark.parametrize("bad", [["a", "b"], None, 3])
def test_non_string_prompt(clip, bad):
    with pytest.raises(PromptError, match="positive prompt must be a string"):
        PromptVector.from_prompts(bad, "", clip)
    with pytest.raises(PromptError, match="negative prompt must be a string"):
        PromptVector.from_prompts("cat", bad, clip)


@pytest.mark.parametrize(
    "positive, construct, position",
    [
        ("cat AND dog", "AND", 4),
        ("<lora:x:1> cat AND dog", "AND", 15),
        ("a [cat:dog:0.5] photo", "prompt editing", 2),
        ("a [cat|dog] photo", "alternation", 2),
    ],
)
def test_meaning_changing_syntax_is_rejected_with_position(clip, positive, construct, position):
    with pytest.raises(PromptError, match=f"{construct}.* at character {position}") as caught:
        PromptVector.from_prompts(positive, "", clip)
    assert caught.value.position == position


def test_and_in_negative_is_plain_text(clip):
    # the host does not split the negative prompt on AND
    vector = PromptVector.from_prompts("cat", "blurry AND ugly", clip)
    assert [u.text for u in vector.units[1:]] == ["blurry", "AND", "ugly"]
    check_zero_offsets(vector, clip)


@pytest.mark.parametrize(
    "positive, message",
    [
        ("(cat BREAK dog)", "BREAK at character 5 is inside brackets"),
        ("cat (dog:-1)", "negative weight -1 at character 5"),
    ],
)
def test_host_quirks_are_errors(clip, positive, message):
    with pytest.raises(PromptError, match=message):
        PromptVector.from_prompts(positive, "", clip)


def test_bad_options(clip):
    with pytest.raises(ValueError, match="unit_mode"):
        PromptVector.from_prompts("cat", "", clip, unit_mode="token")
    with pytest.raises(TypeError, match="tokenizer"):
        PromptVector.from_prompts("cat", "", object())
    vector = PromptVector.from_prompts("red car", "", clip)
    with pytest.raises(ValueError, match="one value per unit"):
        vector.render([0.1])
    with pytest.raises(ValueError, match="finite"):
        vector.render([0.1, float("nan")])


def test_check_names_the_unit_that_breaks_equality(clip):
    # "BREA" and "K" join into the word BREAK, which the host then reads as a chunk break
    vector = PromptVector.from_prompts("cat BREA(K:1) dog", "", clip)
    with pytest.raises(PromptError, match="'BREAK' at character 4"):
        check_zero_offsets(vector, clip)


def test_format_weight_is_float32_exact():
    for weight in [1.0, 1.1, 1 / 1.1, 1.3 * 1.1 * 1.1, 0.55, 2.0, 0.0, 1e-5]:
        text = format_weight(weight)
        assert "e" not in text
        assert np.float32(float(text)) == np.float32(weight)
    assert format_weight(1.0) == "1" and format_weight(1.21) == "1.21"


def test_corpus_zero_offsets_give_identical_host_tokens(clip):
    for mode in ("word", "phrase"):
        for prompt in _corpus():
            vector = PromptVector.from_prompts(prompt, prompt if "quality" in prompt else "", clip, unit_mode=mode)
            check_zero_offsets(vector, clip, embeddings={"easynegative": 8, "bad-hands-5": 2})


def test_long_prompts_keep_unit_weights_across_chunks(clip):
    long_prompts = [p for p in _corpus() if len(host_encoding(p, clip)) > 1]
    assert len(long_prompts) >= 8
    rng = np.random.default_rng(0)
    for prompt in long_prompts:
        vector = PromptVector.from_prompts(prompt, "", clip)
        offsets = rng.uniform(-0.4, 0.4, vector.size)
        rendered, _ = vector.render(offsets)
        chunks = host_encoding(rendered, clip)
        assert [c.tokens for c in chunks] == [c.tokens for c in host_encoding(prompt, clip)]
        seen = [w for c in chunks for w in c.weights]
        expected = _token_weights(vector, clip, vector.weights(offsets))
        assert seen == expected, prompt


def _token_weights(vector, tokenizer, unit_weights):
    """Float32 weight of every token, each item tokenized on its own."""
    weights = iter(unit_weights)
    out = []
    for item in vector._items["positive"]:
        if item.kind == "raw":
            continue
        weight = next(weights) if item.kind == "unit" else item.weight
        out += [float(np.float32(float(format_weight(weight))))] * len(tokenizer.encode(item.text))
    return out


def test_works_with_the_builtin_word_tokenizer():
    from prompt_pinning.builtin import tokenizer as tokenizer_module
    words = tokenizer_module.WordTokenizer()
    for prompt in _corpus()[:80]:
        vector = PromptVector.from_prompts(prompt, "", words)
        check_zero_offsets(vector, words)


@pytest.mark.parametrize("mode", ["word", "phrase"])
@pytest.mark.parametrize("prompt", ["salt &amp; pepper", "dog,&amp;don't(ab", "a &#39;quoted&#39; word, red"])
def test_html_entities_stay_one_unit_and_keep_the_hosts_tokens(prompt, mode):
    tokenizer = ClipBpeTokenizer()
    vector = PromptVector.from_prompts(prompt, "", tokenizer, mode)
    check_zero_offsets(vector, tokenizer)
    assert not any(u.text in ("amp", "&", ";") for u in vector.units)


def test_a_blank_with_its_own_weight_does_not_split_a_phrase():
    # "([cat] [cat])": both words weigh 1.0, only the space between them weighs 1.1.
    tokenizer = ClipBpeTokenizer()
    vector = PromptVector.from_prompts("([cat] [cat])", "", tokenizer, "phrase")
    assert [(u.text, u.base_weight) for u in vector.units] == [("cat cat", 1.0)]
    again = PromptVector.from_prompts(*vector.render(np.zeros(vector.size)), tokenizer, "phrase")
    assert [(u.text, u.base_weight) for u in again.units] == [("cat cat", 1.0)]


@pytest.mark.parametrize("offset", [np.inf, np.nan, 1e308, 200.0])
def test_render_refuses_weights_that_are_not_finite_or_absurd(clip, offset):
    vector = PromptVector.from_prompts("a red cat", "", clip)
    offsets = np.zeros(vector.size)
    offsets[1] = offset
    with pytest.raises(ValueError, match=r"unit 1 \('red'\)|finite"):
        vector.render(offsets)
    offsets[1] = 98.0
    assert "(red:99)" in vector.render(offsets)[0]  # just inside the limit


def test_prompts_with_absurd_weights_are_refused_when_parsed(clip):
    with pytest.raises(PromptError, match=r"weight 2500 at character \d+ .*at most 100"):
        PromptVector.from_prompts("a ((cat:50):50)", "", clip)
    with pytest.raises(PromptError, match="negative prompt: weight 1e\\+41"):
        PromptVector.from_prompts("a cat", "(dog:" + "9" * 41 + ")", clip)


def test_prompts_over_the_unit_limit_are_refused_with_phrase_mode_suggested(clip):
    from prompt_pinning.prompt.weights import MAX_UNITS

    phrases = ", ".join(f"red cat {i}" for i in range(MAX_UNITS // 3))  # 3 words and a comma each
    assert len(PromptVector.from_prompts(phrases, "", clip, "phrase").units) <= MAX_UNITS
    with pytest.raises(PromptError, match=rf"have \d+ pinnable units .*at most {MAX_UNITS}.*"
                                          r"unit_mode 'phrase' .*: \d+ units here\)"):
        PromptVector.from_prompts(phrases, "", clip)
    words = " ".join(["cat"] * (MAX_UNITS - 1))
    assert PromptVector.from_prompts(words, "dog", clip).size == MAX_UNITS  # the limit itself is fine
    with pytest.raises(PromptError, match=rf"{MAX_UNITS + 1} pinnable units \({MAX_UNITS - 1} positive, 2 neg"):
        PromptVector.from_prompts(words, "dog dog", clip)


def test_blanks_between_differently_weighted_groups_are_left_out_without_changing_tokens(clip):
    prompt = "a (red:1.2) (car:0.8) on a road BREAK (green:1.3)\n(field:1.1), blue sky"
    vector = PromptVector.from_prompts(prompt, "", clip)
    rendered = vector.render()[0]
    assert rendered == "a (red:1.2)(car:0.8) on a road BREAK (green:1.3)(field:1.1), blue sky"
    assert host_encoding(rendered, clip) == host_encoding(prompt, clip)
    offsets = np.linspace(0.05, 0.3, vector.size)
    assert ")(" in vector.render(offsets)[0]
    check_zero_offsets(vector, clip)
