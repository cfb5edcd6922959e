"""Build an offline Hugging Face hub cache entry for openai/clip-vit-large-patch14.

Only the tokenizer files and config.json are written (no weights): enough for
CLIPTokenizer.from_pretrained and for building CLIPTextModel from its config.
The BPE merges come from the copy that ships inside the open-clip-torch package.
"""
import gzip
import importlib.util
import json
import os
import sys
from pathlib import Path

REPO_ID = "openai/clip-vit-large-patch14"
SNAPSHOT = "0" * 40  # any 40-hex name works for an offline snapshot
VOCAB_SIZE = 49408
N_MERGES = VOCAB_SIZE - 2 * 256 - 2  # byte tokens, byte tokens + </w>, two specials


def byte_alphabet():
    """GPT-2 style reversible byte -> printable unicode character table, in id order."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def read_merges():
    spec = importlib.util.find_spec("open_clip")  # found, not imported: it needs torchvision
    if spec is None:
        sys.exit("open-clip-torch is not installed: it ships the CLIP BPE (pip install --no-deps open-clip-torch)")
    bpe_path = Path(spec.submodule_search_locations[0]) / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = lines[1:1 + N_MERGES]
    if len(merges) != N_MERGES:
        sys.exit(f"{bpe_path}: expected {N_MERGES} merges, found {len(merges)}")
    return merges


def build_vocab(merges):
    alphabet = byte_alphabet()
    tokens = alphabet + [ch + "</w>" for ch in alphabet]
    tokens += ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    assert len(tokens) == VOCAB_SIZE, len(tokens)
    return {tok: i for i, tok in enumerate(tokens)}


TEXT_CONFIG = {
    "model_type": "clip_text_model", "vocab_size": VOCAB_SIZE, "hidden_size": 768,
    "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
    "max_position_embeddings": 77, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
    "attention_dropout": 0.0, "dropout": 0.0, "initializer_range": 0.02,
    "initializer_factor": 1.0, "projection_dim": 768,
    "bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2,
}
VISION_CONFIG = {
    "model_type": "clip_vision_model", "hidden_size": 1024, "intermediate_size": 4096,
    "num_hidden_layers": 24, "num_attention_heads": 16, "image_size": 224, "patch_size": 14,
    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "projection_dim": 768,
    "num_channels": 3,
}
MODEL_CONFIG = {
    "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": 768,
    "logit_scale_init_value": 2.6592, "initializer_factor": 1.0,
    "text_config": TEXT_CONFIG, "vision_config": VISION_CONFIG,
}
SPECIAL = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
           "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}
TOKENIZER_CONFIG = dict(SPECIAL, errors="replace", add_prefix_space=False, do_lower_case=True,
                        model_max_length=77, tokenizer_class="CLIPTokenizer")


def write_tokenizer(folder: Path) -> None:
    """A CLIPTokenizer's files (vocab, merges, configs) in ``folder``."""
    merges = read_merges()
    (folder / "vocab.json").write_text(json.dumps(build_vocab(merges), ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    for name, obj in [("tokenizer_config.json", TOKENIZER_CONFIG), ("special_tokens_map.json", SPECIAL)]:
        (folder / name).write_text(json.dumps(obj, indent=2))


def main():
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache/huggingface")) / "hub")
    repo_dir = hub / ("models--" + REPO_ID.replace("/", "--"))
    snap = repo_dir / "snapshots" / SNAPSHOT
    snap.mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(SNAPSHOT)
    write_tokenizer(snap)
    (snap / "config.json").write_text(json.dumps(MODEL_CONFIG, indent=2))
    print(f"wrote {snap}")


if __name__ == "__main__":
    main()
