"""The LoRA part of ``a1111_verify.py`` (``--only lora --lora NAME``): network units on a real host.

  listing      /sdapi/v1/loras lists the LoRA named by --lora (make one with tools/make_random_lora.py)
  strengths    plain txt2img (no script) of the same seed with ``<lora:NAME:w>`` at w = 0, 0.5 and 1,
               and at te only / unet only: the host's own extra-network code applies the strength,
               so the images differ from each other, and w = 0 matches the prompt without the tag
  pinning      a tiny pinning run with network_units on (script_args[39]), room for a generation per
               sampler call (script_args[23]), on a prompt with
               ``<lora:NAME:0.8>``: the infotext's pinned prompt carries the pinned strength in the host's
               syntax, its "Lora hashes" names the LoRA, the returned images are what the host renders
               for the pinned prompt alone, and (with --outputs) final_result.json lists a unit of
               kind lora with that strength and the first individuals' saved images are what the host
               renders for each one's own prompt (none took another's strength)
  negative     with network_units on, ``<lora:NAME:0.5>`` in the negative prompt (which the host does not
               apply) is no unit: the run's negative prompt carries it as written
  refusals     with network_units on, an unknown LoRA name is refused with HTTP 4xx naming the LoRAs
               the host has, and a strength outside the range is refused, both before any render
The host needs LoRA hashing for "Lora hashes" (A1111: do not pass --no-hashing). Standard library only.
"""
import argparse
import base64
import json
import os
import re
import struct
import zlib

UNKNOWN = "no_such_lora_35"
# mean absolute pixel difference (0-255) above which two images count as different
CHANGED = 0.5


def add_options(parser):
    parser.add_argument("--lora", default="", help="a LoRA the host lists (its file name without extension)")
    parser.add_argument("--lora-strength", type=float, default=0.8, help="the strength the pinning run starts from")
    parser.add_argument("--lora-too-strong", type=float, default=50.0, help="a strength the extension must refuse")


def png_pixels(encoded):
    """(width, height, bytes per pixel, pixel bytes) of an 8-bit, non-interlaced PNG (base64)."""
    data = base64.b64decode(encoded.split(",", 1)[-1])
    pos, chunks, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or interlace:
        raise ValueError(f"PNG of depth {depth}, interlace {interlace}: only 8-bit non-interlaced is read")
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw, stride = zlib.decompress(b"".join(chunks)), width * bpp
    out, previous = bytearray(), bytearray(stride)
    for row in range(height):
        kind, line = raw[row * (stride + 1)], bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        out += line
        previous = line
    return width, height, bpp, bytes(out)


def difference(a, b):
    """Mean absolute difference of two PNGs' colour channels (0-255)."""
    wa, ha, pa, da = png_pixels(a)
    wb, hb, pb, db = png_pixels(b)
    if (wa, ha) != (wb, hb):
        return float("inf")
    channels = min(pa, pb, 3)
    total = sum(abs(da[i * pa + c] - db[i * pb + c]) for i in range(wa * ha) for c in range(channels))
    return total / (wa * ha * channels)


def _infotext(payload):
    try:
        return json.loads(payload.get("info") or "{}").get("infotexts", [""])[0]
    except (AttributeError, ValueError, IndexError):
        return ""


def _plain(v, url, opts, prompt, negative=None, batch=1):
    """A txt2img render without the script: (status, images, infotext)."""
    request = v.base_request(opts, v.PLAIN_SAMPLER, [])
    for key in ("script_name", "script_args"):
        request.pop(key)
    request.update(prompt=prompt, batch_size=batch)
    if negative is not None:
        request["negative_prompt"] = negative
    status, payload, _ = v.call(url, "/sdapi/v1/txt2img", request, timeout=opts.timeout)
    images = payload.get("images") or [] if status == 200 and isinstance(payload, dict) else []
    return status, images, _infotext(payload) if images else str(v._detail(payload))[:300]


def _tag(name, *strengths):
    return f"<lora:{name}:{':'.join(f'{s:g}' for s in strengths)}>"


def check_strengths(v, url, opts, check, name):
    """The host applies a LoRA's strength: same seed, other strengths, other images."""
    renders = {}
    for label, tag in (("none", ""), ("0", _tag(name, 0)), ("0.5", _tag(name, 0.5)), ("1", _tag(name, 1)),
                       ("te only", _tag(name, 1, 0)), ("unet only", _tag(name, 0, 1))):
        status, images, text = _plain(v, url, opts, f"{opts.prompt} {tag}".strip())
        print(f"    {label:9s} {tag or '(no tag)':28s} HTTP {status}")
        if not images:
            return check.record("lora: plain renders", False, f"{label}: HTTP {status}: {text}")
        renders[label] = (images[0], text)
    diff = {f"{a}/{b}": difference(renders[a][0], renders[b][0])
            for a, b in (("none", "0"), ("0", "0.5"), ("0.5", "1"), ("0", "1"), ("0", "te only"),
                         ("0", "unet only"))}
    print("    mean |difference| (0-255): " + ", ".join(f"{k} {d:.2f}" for k, d in diff.items()))
    check.record("lora: strength 0 renders as no tag", diff["none/0"] < CHANGED, f"{diff['none/0']:.2f}")
    changed = [k for k in diff if k != "none/0" and diff[k] > CHANGED]
    check.record("lora: images change with strength (0, 0.5, 1, te only, unet only)",
                 len(changed) == len(diff) - 1, f"changed: {changed}")
    hashes = _field(renders["1"][1], "Lora hashes")
    check.record("lora: the host's infotext has Lora hashes", bool(hashes) and name in hashes,
                 f"{hashes!r}" + ("" if hashes else " (a host run with --no-hashing gives none)"))
    return True


def _field(text, key):
    found = re.search(rf"(?:^|, |\n){re.escape(key)}: (\"(?:[^\"\\\\]|\\\\.)*\"|[^,\n]*)", text)
    return found.group(1).strip('"') if found else None


def check_pinning(v, url, opts, info, check, name):
    """A pinning run with network units: the pinned strength reaches the host and the records."""
    request = v.base_request(opts, v.PLAIN_SAMPLER, v.pinning_args(info, opts))
    request["script_args"][v.arg_index(info, "network_units")] = True
    # room for a whole generation per sampler call, as on a GPU: individuals must still not share one
    request["script_args"][v.arg_index(info, "max_images_per_call")] = opts.batch * (opts.lambda_ + 1)
    request["prompt"] = f"{opts.prompt} {_tag(name, opts.lora_strength)}"
    print(f"--- lora pinning: {request['prompt']!r}, network_units on", flush=True)
    status, payload, seconds = v.call(url, "/sdapi/v1/txt2img", request, timeout=opts.timeout)
    images = v.show_response(status, payload, seconds)
    if status != 200 or not images:
        return check.record("lora: pinning run", False, f"HTTP {status}: {str(v._detail(payload))[:300]}")
    text = _infotext(payload)
    pinned = text.split("\n", 1)[0]
    found = re.search(rf"<lora:{re.escape(name)}:(-?[0-9.]+)>", pinned)
    strength = float(found.group(1)) if found else None
    check.record("lora: pinned prompt carries the strength in the host's syntax", found is not None
                 and abs(strength - opts.lora_strength) <= 1.0 + 1e-9, f"{pinned[:200]!r}")
    hashes = _field(text, "Lora hashes")
    check.record("lora: pinned infotext has Lora hashes naming the LoRA", bool(hashes) and name in hashes,
                 f"{hashes!r}")
    negative = json.loads(payload.get("info") or "{}").get("negative_prompt", opts.negative)
    status, again, _ = _plain(v, url, opts, pinned, negative, batch=len(images))
    diffs = [difference(a, b) for a, b in zip(images, again)] if again else []
    check.record("lora: returned images are the host's render of the pinned prompt",
                 bool(diffs) and max(diffs) < CHANGED, f"HTTP {status}, mean |difference| {diffs}")
    report = v.info_value(payload, "Pinning report")
    path = os.path.join(opts.outputs, os.path.dirname(report or ""), "final_result.json")
    if not (opts.outputs and report and os.path.isfile(path)):
        print(f"    final_result.json not read (pass --outputs when the WebUI runs on this machine): {report}")
        return True
    with open(path, encoding="utf-8") as handle:
        units = json.load(handle).get("units") or []
    lora = [u for u in units if str(u.get("kind", "")).startswith("lora") and u.get("text") == name]
    pinned_weight = lora[0].get("pinned_weight") if lora else None
    check.record("lora: final_result.json lists the LoRA unit", len(lora) == 1 and strength is not None
                 and abs(float(pinned_weight) - strength) < 1e-6, f"{lora}")
    check_individuals(v, url, opts, check, os.path.dirname(path))
    return True


def check_individuals(v, url, opts, check, run_dir, most=2):
    """Individuals with other strengths, rendered in one run, each match the host's render of their own
    prompt: none took another's networks (the host applies a batch's first prompt's to all of it)."""
    found = []
    for root, _, files in sorted(os.walk(run_dir)):
        if "batch_stats.json" in files and os.path.basename(os.path.dirname(root)).isdigit():
            with open(os.path.join(root, "batch_stats.json"), encoding="utf-8") as handle:
                stats = json.load(handle)
            if stats.get("generation") and "<lora:" in stats.get("prompt", ""):
                found.append((root, stats))
    diffs = []
    for root, stats in found[:most]:
        seeds = stats["seeds"]
        request_opts = argparse.Namespace(**{**vars(opts), "seed": seeds[0]})
        _, again, _ = _plain(v, url, request_opts, stats["prompt"], stats["negative_prompt"], batch=len(seeds))
        saved = []
        for image in stats["images"]:
            with open(os.path.join(root, image), "rb") as handle:
                saved.append(base64.b64encode(handle.read()).decode())
        diff = max((difference(a, b) for a, b in zip(saved, again)), default=float("inf"))
        diffs.append(diff)
        strength = re.search(r"<lora:[^>]*>", stats["prompt"]).group(0)
        print(f"    individual {stats['individual_id']} {strength}: mean |difference| from its own render {diff:.2f}")
    check.record("lora: each individual was rendered with its own strength", len(diffs) == min(most, len(found))
                 and len(diffs) > 0 and max(diffs) < CHANGED, f"{len(found)} individuals, differences {diffs}")


def check_negative(v, url, opts, info, check, name):
    """A LoRA tag in the negative prompt: the host does not apply it, so it is no unit and stays as written."""
    request = v.base_request(opts, v.PLAIN_SAMPLER, v.pinning_args(info, opts))
    request["script_args"][v.arg_index(info, "network_units")] = True
    tag = _tag(name, 0.5)
    request.update(negative_prompt=f"{opts.negative} {tag}", batch_size=1)
    status, payload, seconds = v.call(url, "/sdapi/v1/txt2img", request, timeout=opts.timeout)
    negative = json.loads(payload.get("info") or "{}").get("negative_prompt", "") if status == 200 else ""
    check.record("lora: a negative-prompt tag stays as written", status == 200 and tag in negative,
                 f"HTTP {status} in {seconds:.1f} s, negative {negative or str(v._detail(payload))[:300]!r}")


def check_refusals(v, url, opts, info, check, name):
    """Unknown names and strengths out of range are refused before any render."""
    for label, tag, expected in (("unknown LoRA name", _tag(UNKNOWN, 0.8), [UNKNOWN, name]),
                                 ("strength out of range", _tag(name, opts.lora_too_strong), ["range"])):
        request = v.base_request(opts, v.PLAIN_SAMPLER, v.pinning_args(info, opts))
        request["script_args"][v.arg_index(info, "network_units")] = True
        request["prompt"] = f"{opts.prompt} {tag}"
        status, payload, seconds = v.call(url, "/sdapi/v1/txt2img", request, timeout=300)
        detail = str(v._detail(payload))
        print(f"    {label}: HTTP {status} in {seconds:.1f} s: {detail[:300]}")
        check.record(f"lora: {label} refused", 400 <= status < 500 and all(e in detail for e in expected),
                     f"HTTP {status} in {seconds:.1f} s")


def check_lora(v, url, opts, info, check):
    name = opts.lora
    if not name:
        return check.record("lora", False, "give --lora NAME (tools/make_random_lora.py writes one)")
    index = v.arg_index(info, "network_units")  # exits naming the label found, if it is not there
    check.record(f"lora: script_args[{index}] is network_units", True, repr(info["args"][index]["label"]))
    status, loras, _ = v.call(url, "/sdapi/v1/loras")
    names = sorted({n for entry in (loras if status == 200 else []) for n in (entry.get("name"), entry.get("alias"))
                    if n})
    if not check.record("lora: /sdapi/v1/loras lists it", name in names, f"HTTP {status}, {names[:20]}"):
        return False
    check_strengths(v, url, opts, check, name)
    check_pinning(v, url, opts, info, check, name)
    check_negative(v, url, opts, info, check, name)
    check_refusals(v, url, opts, info, check, name)
    return True


PARTS = {"lora": check_lora}
