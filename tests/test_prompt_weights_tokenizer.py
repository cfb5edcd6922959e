"""The CLIP BPE tokenizer and the host's chunking of prompts into 75-token chunks."""
import importlib.util

import numpy as np
import pytest

from prompt_pinning.rendering import Tokenizer
from prompt_pinning.prompt.tokenizers import ClipBpeTokenizer, find_clip_vocab, host_encoding


@pytest.fixture(scope="module")
def clip():
    return ClipBpeTokenizer()


def _reference_tokenizer():
    """open_clip's own tokenizer, loaded from its file (the package needs torchvision)."""
    try:
        path = find_clip_vocab().parent / "tokenizer.py"
        spec = importlib.util.spec_from_file_location("_reference_clip_tokenizer", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.SimpleTokenizer()
    except Exception as exc:  # pragma: no cover - depends on the installed package
        pytest.skip(f"open_clip's tokenizer is not loadable: {exc}")


def _corpus():
    with open("tests/data/prompts_corpus.txt", encoding="utf-8") as f:
        return [line for line in f.read().splitlines() if line and not line.startswith("#")]


def test_is_a_tokenizer(clip):
    assert isinstance(clip, Tokenizer)
    assert len(clip.strings) == 49408
    assert (clip.start_id, clip.end_id) == (49406, 49407)


def test_words_pieces_and_punctuation(clip):
    ids = clip.encode("A photo of a Cat, masterpiece!!!")
    assert clip.token_strings(ids) == ["a</w>", "photo</w>", "of</w>", "a</w>", "cat</w>", ",</w>",
                                       "masterpiece</w>", "!!!</w>"]
    # digits are single tokens; a rare word is split into several pieces
    assert clip.token_strings(clip.encode("1girl")) == ["1</w>", "girl</w>"]
    pieces = clip.token_strings(clip.encode("chiaroscuro"))
    assert len(pieces) > 1 and "".join(pieces).replace("</w>", "") == "chiaroscuro"
    assert clip.encode("  spaced   out ") == clip.encode("spaced out")


def test_flavors_spell_special_tokens_their_own_way():
    hf, oc = ClipBpeTokenizer(flavor="hf"), ClipBpeTokenizer(flavor="open_clip")
    assert hf.encode("a <|endoftext|>") == oc.encode("a <end_of_text>") == [320, 49407]
    assert hf.encode("tea & cakes") == oc.encode("tea & cakes")
    with pytest.raises(ValueError, match="flavor"):
        ClipBpeTokenizer(flavor="sdxl")


def test_matches_open_clip_on_the_corpus():
    reference = _reference_tokenizer()
    mine = ClipBpeTokenizer(flavor="open_clip")
    extra = ["café naïve 日本語 😀", "don't stop, we'll see", "a_b-c.d;e...f"]
    for text in _corpus() + extra:
        assert mine.encode(text) == reference.encode(text), text


def _long_prompt(groups: int) -> str:
    """Groups of six tokens: five one-token words and a comma."""
    return ", ".join("a big red old car" for _ in range(groups))


def test_short_prompt_is_one_chunk(clip):
    chunks = host_encoding("a (red:1.5) car", clip)
    assert len(chunks) == 1
    assert chunks[0].tokens == tuple(clip.encode("a red car"))
    assert chunks[0].weights == (1.0, 1.5, 1.0)
    tokens, weights = chunks[0].padded(clip.start_id, clip.end_id)
    assert len(tokens) == len(weights) == 77
    assert tokens[0] == clip.start_id and tokens[-1] == clip.end_id


def test_weights_are_float32(clip):
    (chunk,) = host_encoding("[x]", clip)
    assert chunk.weights == (float(np.float32(1 / 1.1)),)


def test_break_closes_a_chunk(clip):
    chunks = host_encoding("cat BREAK dog BREAK", clip)
    assert [c.tokens for c in chunks] == [tuple(clip.encode("cat")), tuple(clip.encode("dog"))]
    assert host_encoding("BREAK", clip)[0].tokens == ()


def test_empty_prompt_gives_one_empty_chunk(clip):
    assert [c.tokens for c in host_encoding("", clip)] == [()]


def test_extra_network_tags_are_invisible(clip):
    assert host_encoding("a <lora:x:0.8>cat", clip) == host_encoding("a cat", clip)


def test_long_prompt_moves_text_after_last_comma(clip):
    # 12 groups fill 72 tokens; the 13th would cross the 75-token chunk end
    prompt = _long_prompt(30)
    chunks = host_encoding(prompt, clip)
    flat = [t for c in chunks for t in c.tokens]
    assert flat == clip.encode(prompt)
    assert all(len(c.tokens) <= 75 for c in chunks)
    # the first chunk ends at a comma instead of cutting a group in two
    assert chunks[0].tokens[-1] == clip.comma_id and len(chunks[0].tokens) == 72
    no_backtrack = host_encoding(prompt, clip, comma_padding_backtrack=0)
    assert len(no_backtrack[0].tokens) == 75


def test_no_comma_nearby_fills_the_chunk(clip):
    prompt = " ".join(["cat"] * 80)
    chunks = host_encoding(prompt, clip)
    assert [len(c.tokens) for c in chunks] == [75, 5]


def test_embeddings_stay_whole_across_chunk_end(clip):
    prompt = " ".join(["cat"] * 73) + " easynegative"
    chunks = host_encoding(prompt, clip, embeddings={"easynegative": 8})
    assert len(chunks[0].tokens) == 73
    assert chunks[1].embeddings == ((0, "easynegative"),)
    assert chunks[1].tokens == (0,) * 8
