"""modules/extra_networks.py stand-in, with the built-in Lora extension's part that matters here.

Mirrored from v1.10.1: ``<kind:arg:arg...>`` tags are cut out of each prompt of a batch
(``parse_prompts``), but only the batch's first prompt's networks are activated, for every
image of the batch; negative prompts are not parsed (their tags reach the text encoder as
text). The Lora extension takes te = the second positional arg or ``te=`` (default 1), unet =
the third or ``unet=`` (default te), and writes "Lora hashes" (name as mentioned: short hash,
for the LoRAs it has a hash for) into ``p.extra_generation_params``. Unknown names are skipped.

Stand-in effect: ``loras`` maps a name to its short hash; an active LoRA adds te times its own
vector to the batch's text conditioning and unet times another to its noise (processing.py).
"""
import hashlib
import re
from collections import defaultdict

import torch

re_extra_net = re.compile(r"<(\w+):([^>]+)>")
loras = {}  # tests: LoRA name -> short hash (the host's models/Lora)
active = []  # (name, te, unet) of the current batch's LoRAs


class ExtraNetworkParams:
    def __init__(self, items=None):
        self.items = items or []
        self.positional = [item for item in self.items if "=" not in item]
        self.named = dict(item.split("=", 1) for item in self.items if "=" in item)


def parse_prompt(prompt):
    found = defaultdict(list)

    def cut(match):
        found[match.group(1)].append(ExtraNetworkParams(items=match.group(2).split(":")))
        return ""

    return re.sub(re_extra_net, cut, prompt), found


def parse_prompts(prompts):
    out, data = [], None
    for prompt in prompts:
        stripped, found = parse_prompt(prompt)
        if data is None:
            data = found
        out.append(stripped)
    return out, data


def activate(p, data):
    active.clear()
    hashes = {}
    for params in (data or {}).get("lora", []):
        name = params.positional[0]
        te = float(params.named.get("te", params.positional[1] if len(params.positional) > 1 else 1.0))
        unet = float(params.named.get("unet", params.positional[2] if len(params.positional) > 2 else te))
        if name not in loras:
            continue
        active.append((name, te, unet))
        hashes[name.translate(str.maketrans("", "", ":,"))] = loras[name]
    if hashes:
        p.extra_generation_params["Lora hashes"] = ", ".join(f"{k}: {v}" for k, v in hashes.items())


def lora_vector(name, part):
    digest = hashlib.sha256(f"lora {part}:{name}".encode()).digest()
    return torch.tensor([b / 255.0 * 2 - 1 for b in digest[:4]])
