"""A1111 attention syntax: each form, with expected pieces and weights."""
import pytest

from prompt_pinning.prompt.attention import (
    PromptError,
    find_and,
    find_schedule,
    parse_prompt_attention,
    strip_extra_networks,
)

R = 1.1
S = 1 / 1.1


@pytest.mark.parametrize(
    "text, expected",
    [
        ("plain words", [("plain words", 1.0)]),
        ("an (important) word", [("an ", 1.0), ("important", R), (" word", 1.0)]),
        ("((twice))", [("twice", R * R)]),
        ("[less]", [("less", S)]),
        ("[[much less]]", [("much less", S * S)]),
        ("(set:1.5)", [("set", 1.5)]),
        ("(spaced : 0.7 )", [("spaced ", 0.7)]),
        ("((nested:1.3))", [("nested", 1.3 * R)]),
        ("(a (b:2) c:0.5)", [("a ", 0.5), ("b", 2 * 0.5), (" c", 0.5)]),
        ("[(mixed)]", [("mixed", R * S)]),
        ("(unclosed", [("unclosed", R)]),
        ("[unclosed", [("unclosed", S)]),
        ("stray) and ] closers", [("stray) and ] closers", 1.0)]),
        ("no paren:1.2)", [("no paren:1.2)", 1.0)]),
        ("(a)(b)", [("ab", R)]),
        ("a(b:1)", [("ab", 1.0)]),
        ("colon: inside", [("colon: inside", 1.0)]),
        ("(x:-0.5)", [("x", -0.5)]),
    ],
)
def test_weights(text, expected):
    got = parse_prompt_attention(text)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [w for _, w in got] == pytest.approx([w for _, w in expected], rel=1e-12)


def test_nesting_multiplies_in_the_hosts_order():
    # (((x:1.3))) is 1.3 * 1.1 * 1.1 in float64, exactly as the host computes it
    assert parse_prompt_attention("(((x:1.3)))") == [("x", 1.3 * 1.1 * 1.1)]
    assert parse_prompt_attention("((x:1.3))") == [("x", 1.3 * 1.1)]
    assert parse_prompt_attention("(((sky)))") == [("sky", 1.1 * 1.1 * 1.1)]


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"\(literal\)", "(literal)"),
        (r"\[literal\]", "[literal]"),
        (r"back\\slash", "back\\slash"),
        (r"lone\backslash", "lonebackslash"),
        (r"\(x:1.5\)", "(x:1.5)"),
    ],
)
def test_escapes_are_literal(text, expected):
    assert parse_prompt_attention(text) == [(expected, 1.0)]


def test_break_splits_and_is_marked():
    assert parse_prompt_attention("a BREAK b") == [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]
    assert parse_prompt_attention("BREAKFAST") == [("BREAKFAST", 1.0)]
    # inside brackets the marker's weight is multiplied: the host no longer breaks there
    assert parse_prompt_attention("(a BREAK b)") == [("a", R), ("BREAK", -R), ("b", R)]


def test_empty_prompt():
    assert parse_prompt_attention("") == [("", 1.0)]


@pytest.mark.parametrize("bad", ["(x:.)", "(x:1.2.3)"])
def test_unparsable_weight_names_position(bad):
    with pytest.raises(PromptError, match="at character 2"):
        parse_prompt_attention(bad)


def test_non_string_rejected():
    with pytest.raises(PromptError, match="string"):
        parse_prompt_attention(["a", "b"])


def test_extra_network_tags_are_removed_with_positions():
    text, index_map, tags = strip_extra_networks("a <lora:x:0.8>, b<hypernet:h:1>")
    assert text == "a , b"
    assert tags == [(2, "<lora:x:0.8>"), (17, "<hypernet:h:1>")]
    assert [index_map[i] for i in range(len(text))] == [0, 1, 14, 15, 16]


def test_and_is_found():
    assert find_and("cat AND dog") == 4
    assert find_and("cat and dog, ANDROID") is None


@pytest.mark.parametrize(
    "text, position, construct",
    [
        ("a [b:c:0.5] d", 2, "prompt editing"),
        ("x [b: 3]", 2, "prompt editing"),
        ("[a:(b):3]", 0, "prompt editing"),
        ("[a|b]", 0, "alternation"),
        ("[fe|]male", 0, "alternation"),
        ("[[a|b]]", 1, "alternation"),
    ],
)
def test_schedules_are_found(text, position, construct):
    at, name = find_schedule(text)
    assert at == position and name.startswith(construct)


@pytest.mark.parametrize("text", ["a [b] c", "[(a:1.2)]", "(a|b)", r"\[a|b\]", "a | b", "[a:b]"])
def test_plain_brackets_are_not_schedules(text):
    assert find_schedule(text) is None


def test_a_lone_backslash_leaves_an_empty_piece_that_splits_neighbours():
    # As in A1111: equal-weight neighbours on either side stay apart.
    assert parse_prompt_attention(r"(a:1.2)(\:1.1)(b:1.2)") == [("a", 1.2), ("", 1.1), ("b", 1.2)]
