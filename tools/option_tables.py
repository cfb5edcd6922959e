"""Write the option tables of README.md and docs/api.md from the option schema.

    python tools/option_tables.py           # rewrite the generated blocks
    python tools/option_tables.py --check   # exit 1 if a committed block differs

Each generated block sits between ``<!-- generated: NAME -->`` and
``<!-- end generated: NAME -->``; everything outside the markers is written by hand.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from prompt_pinning.options import GENERATION_DEFAULTS, GENERATION_LIMITS, OPTIONS, STABLE_ARGUMENTS, Option  # noqa: E402

API_TYPES = {"images": "list of strings or null", "mask": "string or null", "text": "string", "bool": "boolean", "int": "integer", "float": "number",
             "choice": "string", "matrix": "string (JSON) or list of lists", "path": "string"}
# The API examples change a few defaults, to show where values go.
EXAMPLE_CHANGES = {"cma_seed": 1234, "generations": 4, "lambda_": 6}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default_cell(option: Option) -> str:
    """What the option is when left alone, for a person reading the README."""
    if option.kind in ("images", "mask"):
        return "none"
    if option.formula:
        return f"auto: `{option.formula}`" if any(c in option.formula for c in "(*/") else f"auto: {option.formula}"
    if option.kind == "bool":
        return "on" if option.default else "off"
    if option.kind in ("path", "text"):
        return "empty"
    return f"`{option.default}`"


def _range_cell(option: Option) -> str:
    if option.kind not in ("int", "float"):
        return ""
    reason = f" ({option.limit_reason})" if option.limit_reason else ""
    return _cell(option.range_text() + reason)


def readme_options() -> str:
    rows = ["| option | command line | default | range | what it does |", "|---|---|---|---|---|"]
    for option in OPTIONS:
        rows.append(f"| {option.label} | `{option.cli}` | {_cell(_default_cell(option))} | "
                    f"{_range_cell(option)} | {_cell(option.hint)} |")
    return "\n".join(rows)


def readme_generation() -> str:
    flags = {"batch_size": "--batch-size", "cfg_scale": "--cfg-scale"}
    rows = ["| setting | command line | default (CLI and Python) | range |", "|---|---|---|---|"]
    for name, value in GENERATION_DEFAULTS.items():
        low, high = GENERATION_LIMITS.get(name, (None, None))
        limits = f"{low:,} .. {high:,}" if low is not None else ""
        rows.append(f"| {name} | `{flags.get(name, '--' + name)}` | `{value}` | {limits} |")
    return "\n".join(rows)


def api_arguments() -> str:
    rows = ["| # | name | label in the UI | type | default | range | group | meaning |",
            "|---|---|---|---|---|---|---|---|"]
    for i, option in enumerate(OPTIONS):
        meaning = option.hint
        if option.api_note:
            meaning += " " + option.api_note
        if option.formula:
            meaning += f" {'0' if option.kind in ('int', 'float') else 'Empty'} = auto: {option.formula}."
        if option.choices:
            meaning += f" One of: {', '.join(option.choices)}."
        rows.append(f"| {i} | `{option.name}` | {_cell(option.label)} | {API_TYPES[option.kind]} | "
                    f"`{json.dumps(option.ui_default)}` | {_range_cell(option)} | {option.group} | "
                    f"{_cell(meaning)} |")
    return "\n".join(rows)


def example_args(changes: dict | None = None) -> list:
    values = [option.ui_default for option in OPTIONS]
    for i, option in enumerate(OPTIONS):
        if changes and option.name in changes:
            values[i] = changes[option.name]
    return values


def _python_list(values: list) -> str:
    return "[" + ", ".join(repr(v) for v in values) + "]"


def api_count() -> str:
    return (f"- `script_args` is positional: {STABLE_ARGUMENTS} to {len(OPTIONS)} values in the order of the table\n"
            f"  below. Arguments 0 to {STABLE_ARGUMENTS - 1} keep their positions for good and new options are\n"
            f"  appended, so an older client's shorter list still works: the missing trailing arguments\n"
            f"  take their defaults. Fewer than {STABLE_ARGUMENTS} or more than {len(OPTIONS)} values are refused with\n"
            f"  the expected order.")


def api_json_example() -> str:
    request = {
        "prompt": "a red circle, on a blue background", "negative_prompt": "green", "seed": 1234,
        "batch_size": 4, "steps": 20, "cfg_scale": 7, "width": 512, "height": 512,
        "sampler_name": "DPM++ 2M Karras - Hyperbatch", "save_images": False,
        "script_name": "prompt pinning", "script_args": "ARGS",
    }
    text = json.dumps(request, indent=2).replace('"ARGS"', json.dumps(example_args(EXAMPLE_CHANGES)))
    return f"```json\n{text}\n```"


def api_python_example() -> str:
    return f"""```python
import base64

import webuiapi

api = webuiapi.WebUIApi(host="127.0.0.1", port=7860)

script_args = {_python_list(example_args(EXAMPLE_CHANGES))}
with open("target.png", "rb") as handle:  # optional target
    script_args[0] = ["data:image/png;base64," + base64.b64encode(handle.read()).decode()]

result = api.txt2img(
    prompt="a red circle, on a blue background",
    negative_prompt="green",
    seed=1234,
    batch_size=4,
    steps=20,
    cfg_scale=7,
    width=512,
    height=512,
    sampler_name="DPM++ 2M Karras - Hyperbatch",
    script_name="prompt pinning",
    script_args=script_args,
)
print(result.info["infotexts"][0])  # the pinned prompt and the report path
result.images[0].save("pinned.png")
```"""


INDEX = {option.name: i for i, option in enumerate(OPTIONS)}


def api_mask_arguments() -> str:
    mask, source = INDEX["target_mask"], INDEX["target_mask_source"]
    return (f"- `script_args[{mask}]` (`target_mask`): one base64 PNG/JPEG/WEBP string or data URL, or `null`.\n"
            "  Colour masks count by luminance; the mask's own transparency counts as black.\n"
            f"- `script_args[{source}]` (`target_mask_source`): `\"mask image\"` (argument {mask}), `\"target alpha\"`\n"
            "  (the first target image's alpha channel; send a PNG or WEBP with transparency as target),\n"
            "  or, for `/sdapi/v1/img2img` with an inpainting `mask`, `\"inpaint mask\"` (the drawn part\n"
            "  counts) or `\"inverted inpaint mask\"` (the rest counts, as A1111's \"Inpaint not masked\").\n"
            f"  An inpaint source without a mask in the request, or with argument {mask} also set, is an HTTP 422.")


def api_mask_example() -> str:
    return f"""```python
import base64
import io

import webuiapi
from PIL import Image

api = webuiapi.WebUIApi(host="127.0.0.1", port=7860)


def data_url(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


mask = Image.new("L", (512, 512), 0)
mask.paste(255, (0, 0, 256, 512))  # white: the left half counts

script_args = {_python_list(example_args(EXAMPLE_CHANGES))}
script_args[{INDEX["targets"]}] = [data_url(Image.open("target.png"))]
script_args[{INDEX["target_mask"]}] = data_url(mask)

result = api.txt2img(prompt="a red circle, on a blue background", seed=1234, batch_size=4, steps=20,
                     width=512, height=512, script_name="prompt pinning", script_args=script_args)
print(result.info["infotexts"][0])
```"""


def api_tag_arguments() -> str:
    return (f"- `script_args[{INDEX['wanted_tags']}]` (`wanted_tags`) and `script_args[{INDEX['unwanted_tags']}]` "
            "(`unwanted_tags`): text, `\"\"` for none.\n"
            f"- `script_args[{INDEX['tag_loss_weight']}]` (`tag_loss_weight`): > 0, at most 100; "
            f"`script_args[{INDEX['tag_loss_only']}]` (`tag_loss_only`).\n"
            f"- `script_args[{INDEX['tagger']}]` (`tagger`): `\"auto\"` or `\"deepbooru\"` (A1111's DeepBooru, whose weights")


def api_tag_example() -> str:
    return f"""```python
import webuiapi

api = webuiapi.WebUIApi(host="127.0.0.1", port=7860)
script_args = {_python_list(example_args(EXAMPLE_CHANGES))}
script_args[{INDEX["wanted_tags"]}] = "red hair, (smile:1.5)"  # wanted
script_args[{INDEX["unwanted_tags"]}] = "hat"  # unwanted
script_args[{INDEX["tagger"]}] = "deepbooru"

result = api.txt2img(prompt="portrait of a woman, red hair, hat", seed=1234, batch_size=4, steps=20,
                     script_name="prompt pinning", script_args=script_args)
print(result.info["infotexts"][0])
```"""


def readme_curl() -> str:
    args = json.dumps(example_args())
    return f"""```bash
curl -s -X POST http://127.0.0.1:7860/sdapi/v1/txt2img -H 'Content-Type: application/json' -d '{{
  "prompt": "a red circle, on a blue background", "negative_prompt": "green",
  "seed": 1234, "batch_size": 4, "steps": 20, "width": 512, "height": 512,
  "sampler_name": "DPM++ 2M", "save_images": false,
  "script_name": "prompt pinning",
  "script_args": {args}
}}'
```"""


BLOCKS = {
    "README.md": {"curl-example": readme_curl, "options": readme_options, "generation": readme_generation},
    "docs/api.md": {"argument-count": api_count, "arguments": api_arguments,
                    "json-example": api_json_example, "python-example": api_python_example,
                    "mask-arguments": api_mask_arguments, "mask-example": api_mask_example,
                    "tag-arguments": api_tag_arguments, "tag-example": api_tag_example},
}


def fill(text: str, name: str, body: str) -> str:
    """Replace the block NAME in text; raise if its markers are missing."""
    pattern = re.compile(rf"(<!-- generated: {re.escape(name)} -->\n).*?(<!-- end generated: {re.escape(name)} -->)",
                         re.S)
    if not pattern.search(text):
        raise SystemExit(f"no '<!-- generated: {name} -->' block")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def generated(path: str) -> str:
    text = (REPO / path).read_text(encoding="utf-8")
    for name, render in BLOCKS[path].items():
        text = fill(text, name, render())
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 on a difference")
    args = parser.parse_args(argv)
    stale = []
    for path in BLOCKS:
        new = generated(path)
        if new != (REPO / path).read_text(encoding="utf-8"):
            stale.append(path)
            if not args.check:
                (REPO / path).write_text(new, encoding="utf-8")
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run python tools/option_tables.py", file=sys.stderr)
        return 1
    print(("rewrote " if stale else "up to date: ") + ", ".join(stale or BLOCKS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
