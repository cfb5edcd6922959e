"""Cost of prompt handling against the number of pinnable units.

For prompts of 50, 100, 200 and 400 word units (with commas and a few weights)
prints the seconds of each step: parsing the attention syntax, splitting into
units, building the vector, ``check_zero_offsets``, rendering a prompt from
offsets, and the host's tokenization of that rendering (modelled by
``host_encoding``), with the CLIP BPE tokenizer. Each figure is the best of
``--repeats`` runs; the tokenizer's caches are warm after the first.

With ``--webui DIR`` (an A1111 v1.10.1 checkout; run with the WebUI's Python, which has
``lark``) it also times the host's own prompt parser on one rendered prompt: A1111 runs it
(``prompt_parser.get_learned_conditioning_prompt_schedules``) on every distinct prompt of
every render call, before the text encoder.

    OMP_NUM_THREADS=1 python benchmarks/bench_prompt_units.py [--units 50 100 200 400] [--repeats 3]
    OMP_NUM_THREADS=1 PYTHONPATH=. $A1111/venv/bin/python benchmarks/bench_prompt_units.py --webui $A1111/webui --repeats 1
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from bench_builtin import best_of  # noqa: E402 (beside this file)
from prompt_pinning.prompt import weights as prompt_weights
from prompt_pinning.prompt.attention import parse_prompt_attention
from prompt_pinning.prompt.units import POSITIVE, prompt_items
from prompt_pinning.prompt.weights import PromptVector, check_zero_offsets
from prompt_pinning.prompt.tokenizers import ClipBpeTokenizer, host_encoding

WORDS = ("red cat sitting on a wooden table near the window, soft light, detailed fur, "
         "blue sky with clouds over green hills, oil painting of an old harbour at dusk, "
         "small boats, (warm:1.2) colours, [sharp] focus, portrait of a knight in silver armour").split()


def make_prompt(units: int) -> str:
    """About ``units`` word units: the words above repeated, commas included."""
    words = []
    while len(words) < units:
        words.extend(WORDS)
    return " ".join(words[:units])


def measure(units: int, tokenizer, repeats: int, host_parser=None) -> dict[str, float]:
    prompt = make_prompt(units)
    vector = PromptVector.from_prompts(prompt, "", tokenizer)
    offsets = np.random.default_rng(0).normal(0.0, 0.1, vector.size)
    rendered = vector.render(offsets)[0]
    return {
        "units": vector.size,
        "parse": best_of(repeats, lambda: parse_prompt_attention(prompt)),
        "split": best_of(repeats, lambda: prompt_items(prompt, POSITIVE, tokenizer)),
        "vector": best_of(repeats, lambda: PromptVector.from_prompts(prompt, "", tokenizer)),
        "check_zero": best_of(repeats, lambda: check_zero_offsets(vector, tokenizer)),
        "render": best_of(repeats, lambda: vector.render(offsets)),
        "host_tokens": best_of(repeats, lambda: host_encoding(rendered, tokenizer)),
        "a1111_parse": (best_of(repeats, lambda: host_parser.get_learned_conditioning_prompt_schedules([rendered], 20))
                        if host_parser is not None else float("nan")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[50, 100, 200, 400])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--webui", help="an A1111 checkout: also time its prompt parser")
    opts = parser.parse_args()
    prompt_weights.MAX_UNITS = 10**6  # measured past the limit too
    tokenizer = ClipBpeTokenizer()
    host_parser = None
    if opts.webui:
        sys.path.insert(0, opts.webui)
        from modules import prompt_parser as host_parser
    columns = ("parse", "split", "vector", "check_zero", "render", "host_tokens", "a1111_parse")
    print(f"{'units':>6} " + " ".join(f"{c:>11}" for c in columns) + "   (seconds)")
    for units in opts.units:
        row = measure(units, tokenizer, opts.repeats, host_parser)
        print(f"{row['units']:>6} " + " ".join(f"{row[c]:>11.4f}" for c in columns), flush=True)


if __name__ == "__main__":
    main()
