"""The host seam (prompt_pinning_webui.hosts) on both stand-in hosts: A1111 v1.10.1 and Forge."""
import pytest

import forge_stand_in
import stand_in_models
import webui_stand_in

webui_stand_in.install()

from modules import sd_hijack, sd_models, shared  # noqa: E402

from prompt_pinning.config import PinningConfig  # noqa: E402
from prompt_pinning.run.builders import build_vector  # noqa: E402
from prompt_pinning_webui.hosts import A1111Host, ForgeHost, ModelNotLoaded, current_host  # noqa: E402
from prompt_pinning_webui.tokenizer import HostTokenizer, text_encoders  # noqa: E402
from prompt_pinning_webui.cost import describe_cost  # noqa: E402

HOSTS = ["a1111", "forge"]


@pytest.fixture(autouse=True)
def a1111():
    webui_stand_in.reset()
    yield
    webui_stand_in.reset()


def use(host, kind="sd1"):
    if host == "forge":
        forge_stand_in.install(kind)
    elif kind != "sd1":
        shared.sd_model = stand_in_models.a1111_model(kind)


def test_the_host_is_told_apart_by_forges_model_loader():
    assert isinstance(current_host(), A1111Host)
    forge_stand_in.install()
    assert isinstance(current_host(), ForgeHost)
    webui_stand_in.reset()
    assert isinstance(current_host(), A1111Host)


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("kind, encoders", [("sd1", 1), ("sdxl", 2)])
def test_the_loaded_models_encoders_tokenize_the_same_on_both_hosts(host, kind, encoders):
    use(host, kind)
    tokenizer = HostTokenizer.from_model()
    assert len(tokenizer.encoders) == encoders
    ids = tokenizer.encode("a red circle, blue")
    assert ids == stand_in_models.word_ids("a red circle, blue") and len(ids) == 5
    assert tokenizer.token_strings(ids[:2]) == ["a</w>", "red</w>"]


def test_forges_first_use_loads_the_checkpoint_once_and_follows_a_new_selection():
    forge_stand_in.install()
    data = sd_models.model_data
    assert isinstance(shared.sd_model, forge_stand_in.FakeInitialModel) and data.loads == 0
    first = HostTokenizer.from_model()
    assert data.loads == 1 and first.encoders == [shared.sd_model.text_processing_engine]
    HostTokenizer.from_model()
    assert data.loads == 1  # the same selection: no reload
    data.forge_loading_parameters = {"checkpoint_info": "random-sdxl.safetensors", "kind": "sdxl"}
    second = HostTokenizer.from_model()  # selected in the UI, not loaded yet: loaded now, as process_images would
    assert data.loads == 2 and len(second.encoders) == 2


def test_the_live_cost_line_never_loads_forges_checkpoint():
    forge_stand_in.install()
    with pytest.raises(ModelNotLoaded, match="not loaded yet"):
        HostTokenizer.from_model(load=False)
    assert "Cannot count the cost yet: the checkpoint is not loaded yet" in describe_cost("red circle", "", "word")
    assert sd_models.model_data.loads == 0
    HostTokenizer.from_model()
    assert "<b>3</b> pinnable units" in describe_cost("red circle", "green", "word")


def test_forges_placeholder_and_t5_models_are_refused_with_the_supported_kinds():
    with pytest.raises(ValueError, match="no text encoder with a tokenize"):
        text_encoders(forge_stand_in.FakeInitialModel(), A1111Host())
    with pytest.raises(ValueError, match="no CLIP text processing engine.*SD1.x, SD2.x and SDXL"):
        text_encoders(forge_stand_in.FakeInitialModel(), ForgeHost())
    with pytest.raises(ValueError, match="T5"):
        text_encoders(stand_in_models.forge_model("flux"), ForgeHost())


@pytest.mark.parametrize("host", HOSTS)
def test_embeddings_are_read_where_each_host_keeps_them(host, monkeypatch):
    import prompt_pinning.prompt.weights as prompt_weights

    use(host)
    tokenizer = HostTokenizer.from_model()
    assert tokenizer.embeddings() == {}
    loaded = {"my-style": stand_in_models.Embedding("my-style", 5)}
    if host == "forge":
        shared.sd_model.text_processing_engine.embeddings.word_embeddings.update(loaded)
        assert not hasattr(sd_hijack.model_hijack, "embedding_db")
    else:
        sd_hijack.model_hijack.embedding_db.word_embeddings.update(loaded)
    assert tokenizer.embeddings() == {"my-style": 5} and tokenizer.embedding_names() == ["my-style"]
    token_counts = []
    real = prompt_weights.host_encoding

    def recording(prompt, tokenizer, **options):
        chunks = real(prompt, tokenizer, **options)
        token_counts.append(sum(len(c.tokens) for c in chunks))
        return chunks
    monkeypatch.setattr(prompt_weights, "host_encoding", recording)
    vector = build_vector(PinningConfig(positive="a my-style cat", negative=""), _Renderer(tokenizer))
    assert [unit.text for unit in vector.units] == ["a", "my-style", "cat"]
    # the prompt check sees the embedding's 5 vectors where the host puts them, not its name's 3 tokens
    assert {count for count in token_counts if count} == {1 + 5 + 1}  # the negative prompt is empty


@pytest.mark.parametrize("host, setting, first_chunk", [
    ("a1111", 20, 72), ("a1111", 2, 75),  # A1111 follows "Prompt word wrap length limit"
    ("forge", 20, 72), ("forge", 2, 72),  # Forge's chunker always moves back up to 20 tokens
])
def test_long_prompts_are_chunked_as_the_host_chunks_them(host, setting, first_chunk, monkeypatch):
    """Groups of six tokens end at a comma 3 tokens before the chunk end: moved back only if allowed."""
    import prompt_pinning.prompt.weights as prompt_weights

    use(host)
    shared.opts.comma_padding_backtrack = setting
    tokenizer = HostTokenizer.from_model()
    assert tokenizer.comma_padding_backtrack == (20 if host == "forge" else setting)
    chunkings = []
    real = prompt_weights.host_encoding

    def recording(prompt, tokenizer, **options):
        chunks = real(prompt, tokenizer, **options)
        chunkings.append([len(c.tokens) for c in chunks])
        return chunks
    monkeypatch.setattr(prompt_weights, "host_encoding", recording)
    build_vector(PinningConfig(positive=", ".join(["a big red old car"] * 24), negative=""), _Renderer(tokenizer))
    long_prompts = [sizes for sizes in chunkings if len(sizes) > 1]
    assert long_prompts and all(sizes[0] == first_chunk for sizes in long_prompts)


class _Renderer:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
