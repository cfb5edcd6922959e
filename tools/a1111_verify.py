"""Exercise the prompt pinning extension through a running WebUI's API and print what it sees.

usage: python tools/a1111_verify.py [--url http://127.0.0.1:7860] [--steps 3] [--size 64]

The host may be AUTOMATIC1111's WebUI or Forge (docs/a1111_setup.md, docs/forge_setup.md): the
checks use only the API both share. First it prints the host's version from /internal/sysinfo
(A1111: v1.10.1; Forge: f2.0.1v1.10.1-...), when the WebUI serves it. On Forge the first pinning
run also loads the checkpoint, which Forge does at the first generation.

Checks, in order (each prints one line, then details):
  scripts      /sdapi/v1/scripts lists "prompt pinning" for txt2img and img2img
  script-info  /sdapi/v1/script-info describes its arguments (labels, defaults)
  samplers     /sdapi/v1/samplers lists the Hyperbatch samplers
  errors       a short script_args list and a bad value are refused with HTTP 4xx
  txt2img      a tiny pinning run with a plain sampler, then with a Hyperbatch sampler; each
               infotext carries every pinning key and names its own image's seed, and the
               images are on the request's seeds
  img2img      a tiny pinning run on the first txt2img image
  interrupt    a longer run stopped with /sdapi/v1/interrupt returns its best images
  resume       a run with a target image, interrupted and resumed, ends where an uninterrupted
               run does (same baseline and best loss), its folder holds only data files (no
               pickle); folders outside the outputs, missing ones and ".." paths are refused
               with HTTP 4xx and a message naming the folder
  paths        targets named by a server path (system files, a PNG outside Gradio's uploads,
               a missing file, '..') are all refused with one and the same message
  hang         a run of 10^9 generations is refused at once, the message naming the limit
               (--generations-limit); an accepted one is interrupted and fails the check
  units        a prompt over the unit limit is refused quickly with advice to use phrase
               mode; tiny runs at a few unit counts print their prompt handling seconds
  decoders, prompt-size, public   see tools/a1111_verify_inputs.py
  lora         LoRA strengths as units, with --lora NAME: see tools/a1111_verify_lora.py
Infotexts name run folders relative to the WebUI's outputs folder: pass --outputs (that folder,
when the WebUI runs on this machine) for the checks that read a run folder's files.
Only the standard library is used, so any Python 3.8+ can run it. Exit status 1 if a
check failed. Runs are kept tiny (few generations, small images): meant for a CPU WebUI
with a random-weight checkpoint, where only the plumbing is being tested.
"""
import argparse
import base64
import json
import os
import struct
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # its companion module, however it is loaded
import a1111_verify_inputs  # noqa: E402
import a1111_verify_lora  # noqa: E402

SCRIPT_NAME = "prompt pinning"
PLAIN_SAMPLER = "Euler a"
INFO_KEYS = ("Pinning loss", "Pinning baseline loss", "Pinning loss seeds", "Pinning improvement",
             "Pinning validation loss", "Pinning stop", "Pinning report")
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the engine's option schema
from prompt_pinning.options import OPTIONS  # noqa: E402
from prompt_pinning_webui.panel import label as panel_label  # noqa: E402  (the labels script-info shows)

# script_args 25-27, 36, 37 and 39, their panel labels and defaults, as the extension declares them
NEWER_ARGS = {i: (panel_label(OPTIONS[i].name), OPTIONS[i].ui_default) for i in (25, 26, 27, 36, 37, 39)}
ARG_INDEX = {option.name: i for i, option in enumerate(OPTIONS)}
# file kinds a run folder may hold: data formats only, nothing that is unpickled
RUN_FILE_SUFFIXES = (".json", ".jsonl", ".npz", ".html", ".png", ".jpg", ".webp", ".svg", ".gif", ".js", ".css",
                     ".txt", ".csv", ".tmp")


class Check:
    """Collects pass/fail results of the named checks."""

    def __init__(self):
        self.results = []

    def record(self, name, ok, detail=""):
        self.results.append((name, ok))
        print(f"[{'ok' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail else ""), flush=True)
        return ok

    def summary(self):
        failed = [name for name, ok in self.results if not ok]
        print(f"\nverify: {len(self.results) - len(failed)} ok, {len(failed)} failed"
              + (f" ({', '.join(failed)})" if failed else ""))
        return not failed


def call(url, path, body=None, timeout=1800):
    """GET (body None) or POST JSON; returns (status, parsed JSON or text, seconds)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url.rstrip("/") + path, data=data,
                                     headers={"Content-Type": "application/json"})
    start = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    seconds = time.monotonic() - start
    try:
        return status, json.loads(raw), seconds
    except ValueError:
        return status, raw.decode(errors="replace"), seconds


def find_script_info(infos, is_img2img):
    for info in infos:
        if info.get("name") == SCRIPT_NAME and bool(info.get("is_img2img")) == is_img2img:
            return info
    return None


def arg_index(info, name):
    """The script_args position of option ``name``; script-info must show the panel's label there."""
    index = ARG_INDEX[name]
    args = info["args"]
    found = args[index]["label"] if index < len(args) else None
    if found != panel_label(name):
        raise SystemExit(f"script-info: expected argument {index} ({name}) labelled {panel_label(name)!r}, "
                         f"found {found!r}")
    return index


def script_args_from(info, overrides):
    """Defaults from /sdapi/v1/script-info, with values replaced by option name."""
    args = [arg.get("value") for arg in info["args"]]
    for name, value in overrides.items():
        args[arg_index(info, name)] = value
    return args


def show_response(status, payload, seconds):
    """Print the interesting parts of a txt2img/img2img response; return its images."""
    print(f"    HTTP {status} in {seconds:.1f} s")
    if not isinstance(payload, dict) or "images" not in payload:
        print(f"    body: {str(payload)[:1500]}")
        return []
    images = payload.get("images") or []
    print(f"    images: {len(images)}")
    try:
        info = json.loads(payload.get("info") or "{}")
    except ValueError:
        info = {}
    for text in (info.get("infotexts") or [])[:1]:
        print("    infotext[0]:")
        for line in text.splitlines():
            print(f"      {line[:400]}")
        for key in INFO_KEYS:
            print(f"    {key}: {'present' if key + ':' in text else 'MISSING'}")
        missing = [key for key in INFO_KEYS if key + ":" not in text]
        if missing:
            print(f"    infotext lacks {missing}")
    print(f"    seeds: {info.get('all_seeds')}  prompts[0]: {(info.get('all_prompts') or [''])[0][:200]}")
    return images


def show_host(url):
    """Print the WebUI's version (not a check: /internal/sysinfo needs the UI, not --nowebui)."""
    status, info, _ = call(url, "/internal/sysinfo", timeout=300)
    if status != 200 or not isinstance(info, dict):
        print(f"host: /internal/sysinfo answered HTTP {status}; version unknown")
        return None
    version = str(info.get("Version") or "unknown")
    kind = "Forge" if version.startswith("f") or "forge" in version.lower() else "AUTOMATIC1111 WebUI"
    print(f"host: {kind}, version {version}, Python {info.get('Python', '?')}", flush=True)
    return version


def check_listing(url, check):
    status, scripts, _ = call(url, "/sdapi/v1/scripts")
    ok = status == 200 and all(SCRIPT_NAME in scripts.get(tab, []) for tab in ("txt2img", "img2img"))
    check.record("scripts", ok, f"HTTP {status}, {scripts if not ok else 'listed in both tabs'}")

    status, infos, _ = call(url, "/sdapi/v1/script-info")
    found = {tab: find_script_info(infos if status == 200 else [], tab == "img2img")
             for tab in ("txt2img", "img2img")}
    ok = all(found.values())
    counts = {tab: len(info["args"]) for tab, info in found.items() if info}
    check.record("script-info", ok, f"argument counts {counts}")
    if found["txt2img"]:
        args = found["txt2img"]["args"]
        seen = {i: (args[i]["label"], args[i]["value"]) if i < len(args) else None for i in NEWER_ARGS}
        check.record("script-info: newer script_args", all(
            seen[i] and seen[i][0] == label and seen[i][1] == value
            for i, (label, value) in NEWER_ARGS.items()), f"{seen}")
        for i, arg in enumerate(found["txt2img"]["args"]):
            choices = f" choices={arg['choices']}" if arg.get("choices") else ""
            print(f"    {i:2d} {arg['label']!r} default={arg['value']!r}{choices}")

    status, samplers, _ = call(url, "/sdapi/v1/samplers")
    names = [s["name"] for s in samplers] if status == 200 else []
    hyper = [name for name in names if "hyperbatch" in name.lower()]
    check.record("samplers", bool(hyper) and PLAIN_SAMPLER in names,
                 f"{len(names)} samplers, hyperbatch: {hyper}")
    return found, hyper


def base_request(opts, sampler, script_args):
    return {
        "prompt": opts.prompt, "negative_prompt": opts.negative, "seed": opts.seed,
        "batch_size": opts.batch, "steps": opts.steps, "cfg_scale": 7,
        "width": opts.size, "height": opts.size, "sampler_name": sampler,
        "save_images": False, "script_name": SCRIPT_NAME, "script_args": script_args,
    }


def check_errors(url, opts, info, check):
    args = script_args_from(info, {})
    status, payload, _ = call(url, "/sdapi/v1/txt2img", base_request(opts, PLAIN_SAMPLER, args[:3]))
    check.record("errors: short script_args refused", 400 <= status < 500,
                 f"HTTP {status}: {str(payload)[:300]}")
    bad = script_args_from(info, {"initial_std": -1})
    status, payload, _ = call(url, "/sdapi/v1/txt2img", base_request(opts, PLAIN_SAMPLER, bad))
    check.record("errors: negative STD refused", 400 <= status < 500,
                 f"HTTP {status}: {str(payload)[:300]}")


def pinning_args(info, opts):
    return script_args_from(info, {"cma_seed": opts.cma_seed, "generations": opts.generations,
                                   "lambda_": opts.lambda_})


def run_pinning(url, path, request, name, opts, check):
    print(f"--- {name}: {path} sampler={request['sampler_name']!r} batch={request['batch_size']} "
          f"steps={request['steps']} size={opts.size} generations={opts.generations} "
          f"lambda_={opts.lambda_}", flush=True)
    status, payload, seconds = call(url, path, request, timeout=opts.timeout)
    images = show_response(status, payload, seconds)
    missing = [key for key in INFO_KEYS if info_value(payload, key) is None] if images else list(INFO_KEYS)
    seeds = infotext_seeds(payload) if images else None
    # the result comes back on the request's own seeds, next to the unmodified prompt's batch
    wanted = [request["seed"] + i for i in range(request["batch_size"])] if request.get("seed", -1) >= 0 else None
    on_own_seeds = seeds is not None and (wanted is None or seeds[1] == wanted)
    check.record(name, status == 200 and len(images) == request["batch_size"] and not missing
                 and seeds is not None and seeds[0] == seeds[1] and on_own_seeds,
                 f"HTTP {status}, {len(images)} images, {seconds:.1f} s"
                 + (f", infotext lacks {missing}" if missing else "")
                 + f", (infotext seeds, image seeds): {seeds}, request's seeds {wanted}")
    return images


def check_interrupt(url, opts, info, check):
    """Start a run of many generations, interrupt it, expect the best-so-far images."""
    args = script_args_from(info, {"cma_seed": opts.cma_seed, "generations": 50,
                                   "lambda_": opts.lambda_})
    request = base_request(opts, PLAIN_SAMPLER, args)
    result = {}
    worker = threading.Thread(target=lambda: result.update(
        reply=call(url, "/sdapi/v1/txt2img", request, timeout=opts.timeout)))
    print(f"--- interrupt: 50 generations, /sdapi/v1/interrupt after {opts.interrupt_after:.0f} s",
          flush=True)
    worker.start()
    worker.join(opts.interrupt_after)
    asked = time.monotonic()
    status, _, _ = call(url, "/sdapi/v1/interrupt", {})
    print(f"    interrupt: HTTP {status}")
    worker.join(opts.timeout)
    print(f"    reply {time.monotonic() - asked:.1f} s after the interrupt")
    if "reply" not in result:
        return check.record("interrupt", False, "no reply")
    status, payload, seconds = result["reply"]
    images = show_response(status, payload, seconds)
    text = json.loads(payload.get("info") or "{}").get("infotexts", [""])[0] if images else ""
    return check.record("interrupt", status == 200 and len(images) == opts.batch
                        and "Pinning stop: interrupted" in text,
                        f"HTTP {status}, {len(images)} images, {seconds:.1f} s")


def info_value(payload, key):
    """The value of ``key`` in the first infotext of a response (None when absent)."""
    try:
        text = json.loads(payload.get("info") or "{}").get("infotexts", [""])[0]
    except (AttributeError, ValueError, IndexError):
        return None
    for part in text.replace("\n", ", ").split(", "):
        if part.startswith(key + ": "):
            return part[len(key) + 2:].strip('"')
    return None


def infotext_seeds(payload):
    """(the Seed of each infotext, all_seeds): each image's text should name that image's seed."""
    try:
        info = json.loads(payload.get("info") or "{}")
        texts = [part for text in info.get("infotexts") or [] for part in text.replace("\n", ", ").split(", ")
                 if part.startswith("Seed: ")]
        return [int(part[len("Seed: "):]) for part in texts], list(info.get("all_seeds") or [])
    except (AttributeError, ValueError):
        return None


def check_resume(url, opts, info, check):
    """Interrupt a run pinned to a target, resume it, compare with an uninterrupted run."""
    overrides = {"cma_seed": opts.cma_seed, "generations": max(2, opts.generations),
                 "lambda_": opts.lambda_}
    request = base_request(opts, PLAIN_SAMPLER, script_args_from(info, overrides))
    target = _grey_png(opts.size, level=0x30)
    request["script_args"][0] = [target]
    print("--- resume: uninterrupted run with a target", flush=True)
    status, full, full_seconds = call(url, "/sdapi/v1/txt2img", request, timeout=opts.timeout)
    if status != 200:
        return check.record("resume", False, f"uninterrupted run: HTTP {status}: {str(full)[:300]}")
    result = {}
    worker = threading.Thread(target=lambda: result.update(
        reply=call(url, "/sdapi/v1/txt2img", request, timeout=opts.timeout)))
    worker.start()
    worker.join(min(opts.interrupt_after, full_seconds / 2))  # about half way
    call(url, "/sdapi/v1/interrupt", {})
    worker.join(opts.timeout)
    status, cut, _ = result.get("reply", (0, None, 0))
    report = info_value(cut, "Pinning report") if status == 200 else None
    if not report:
        return check.record("resume", False, f"interrupted run: HTTP {status}: {str(cut)[:300]}")
    run_dir = report[: -len("index.html")].rstrip("/")  # relative to the outputs folder
    print(f"    interrupted run: {info_value(cut, 'Pinning stop')}, folder {run_dir}")
    resume_index = arg_index(info, "resume")
    resumed_args = list(request["script_args"])
    resumed_args[0], resumed_args[resume_index] = None, run_dir  # no target given: the run keeps its own
    status, resumed, seconds = call(url, "/sdapi/v1/txt2img", dict(request, script_args=resumed_args),
                                    timeout=opts.timeout)
    show_response(status, resumed, seconds)
    same = [(key, info_value(resumed, key), info_value(full, key))
            for key in ("Pinning baseline loss", "Pinning loss", "Pinning stop")]
    check.record("resume: continues to the uninterrupted result", status == 200 and all(a == b for _, a, b in same),
                 f"HTTP {status}, (resumed, uninterrupted): {same}")
    check_run_files(os.path.join(opts.outputs, run_dir), check)
    runs_root = run_dir.rsplit("/", 1)[0]
    for name, path in (("outside the outputs", "/tmp"), ("missing", runs_root + "/99999999"),
                       ("'..' out of the outputs", run_dir + "/../../../../../../../../tmp")):
        refused_args = list(resumed_args)
        refused_args[resume_index] = path
        status, payload, _ = call(url, "/sdapi/v1/txt2img", dict(request, script_args=refused_args))
        names_it = os.path.basename(path) in str(_detail(payload))  # it names the folder it refuses
        check.record(f"resume: {name} refused", 400 <= status < 500 and names_it,
                     f"HTTP {status}: {str(_detail(payload))[:300]}")
    return True


def check_run_files(run_dir, check):
    """A resumed run's folder (when on this machine) holds only data formats: nothing to unpickle."""
    if not os.path.isdir(run_dir):
        print(f"    run folder {run_dir} is not on this machine; its files are not listed")
        return
    names = sorted(os.path.relpath(os.path.join(root, name), run_dir)
                   for root, _, files in os.walk(run_dir) for name in files)
    odd = [name for name in names if not name.lower().endswith(RUN_FILE_SUFFIXES)
           and not (name == "run.lock" and os.path.getsize(os.path.join(run_dir, name)) == 0)]  # the empty lock
    print(f"    run folder files: {names}")
    check.record("resume: run folder holds no pickle", bool(names) and not odd,
                 f"{len(names)} files" + (f", unexpected: {odd}" if odd else ""))


def _detail(payload):
    return payload.get("detail") if isinstance(payload, dict) else str(payload)


def check_paths(url, opts, info, check):
    """Targets named by a path must never be read: one refusal, whatever the path."""
    folder = tempfile.mkdtemp(prefix="pinning-verify-")
    outside = os.path.join(folder, "outside.png")
    with open(outside, "wb") as handle:
        handle.write(base64.b64decode(_grey_png(8)))
    names = {"/etc/passwd": "/etc/passwd", "/proc/self/environ": "/proc/self/environ",
             "PNG outside the uploads": outside, "missing file": os.path.join(folder, "missing.png"),
             "'..' path": os.path.join(folder, "..", os.path.basename(folder), "outside.png")}
    details = {}
    for label, name in names.items():
        args = script_args_from(info, {"targets": [{"name": name}], "generations": 1,
                                       "lambda_": 2})
        status, payload, seconds = call(url, "/sdapi/v1/txt2img", base_request(opts, PLAIN_SAMPLER, args),
                                        timeout=120)
        details[label] = (status, _detail(payload))
        print(f"    {label}: HTTP {status} in {seconds:.1f} s: {str(_detail(payload))[:200]}")
    os.remove(outside)
    os.rmdir(folder)
    statuses = {status for status, _ in details.values()}
    texts = {text for _, text in details.values()}
    check.record("paths: every named file refused alike", statuses <= set(range(400, 500)) and len(texts) == 1,
                 f"statuses {sorted(statuses)}, {len(texts)} distinct message(s)")


def check_hang(url, opts, info, check):
    """10^9 generations: refused, or interruptible within seconds of the current render."""
    args = script_args_from(info, {"cma_seed": opts.cma_seed, "generations": 10**9,
                                   "lambda_": opts.lambda_})
    request = base_request(opts, PLAIN_SAMPLER, args)
    request.update(batch_size=1)
    result = {}
    worker = threading.Thread(target=lambda: result.update(
        reply=call(url, "/sdapi/v1/txt2img", request, timeout=opts.timeout)))
    print(f"--- hang: 10^9 generations, interrupt after {opts.hang_after:.0f} s", flush=True)
    started = time.monotonic()
    worker.start()
    worker.join(opts.hang_after)
    if "reply" in result:
        status, payload, seconds = result["reply"]
        text = str(_detail(payload))
        print(f"    HTTP {status} in {seconds:.1f} s: {text[:300]}")
        names_limit = str(opts.generations_limit) in text.replace(",", "").replace("_", "")
        return check.record("hang: 10^9 generations refused", 400 <= status < 500 and names_limit,
                            f"HTTP {status} in {seconds:.1f} s, "
                            f"{'names' if names_limit else 'does not name'} the limit {opts.generations_limit}")
    asked = time.monotonic()
    status, _, _ = call(url, "/sdapi/v1/interrupt", {})
    worker.join(opts.hang_limit)
    if "reply" not in result:
        return check.record("hang: 10^9 generations", False,
                            f"no reply {opts.hang_limit:.0f} s after the interrupt (HTTP {status})")
    status, payload, _ = result["reply"]
    latency = time.monotonic() - asked
    show_response(status, payload, time.monotonic() - started)
    return check.record("hang: 10^9 generations refused", False,
                        f"accepted (HTTP {status}), reply {latency:.1f} s after the interrupt (the current "
                        f"sampling step finishes first)")


def _words(count):
    vocabulary = "red blue green small large round square bright dark soft".split()
    return " ".join(vocabulary[i % len(vocabulary)] for i in range(count))


def _run_dir_stages(payload, outputs=""):
    """Prompt handling seconds from the run folder, when it is on this machine."""
    try:
        text = json.loads(payload.get("info") or "{}").get("infotexts", [""])[0]
        report = text.split("Pinning report: ", 1)[1].split(",")[0].strip().strip('"')
        path = os.path.join(outputs, os.path.dirname(report), "evaluations.jsonl")
        with open(path, encoding="utf-8") as handle:
            entries = [e for e in (json.loads(line) for line in handle if line.strip()) if "offsets" in e]
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    extras = [entry.get("extra") or {} for entry in entries]
    host = [e.get("host_prompt_seconds") for e in extras if e.get("host_prompt_seconds") is not None]
    ours = [e.get("prompt_seconds") for e in extras if e.get("prompt_seconds") is not None]
    renders = [entry.get("render_seconds") or 0.0 for entry in entries]
    return {"individuals": len(entries), "render_s": sum(renders), "host_prompt_s": sum(host),
            "engine_prompt_s": sum(ours)}


def check_units(url, opts, info, check):
    """A prompt over the unit limit is refused fast; small runs show prompt handling costs."""
    request = base_request(opts, PLAIN_SAMPLER, pinning_args(info, opts))
    request["prompt"] = _words(opts.too_many_units)
    status, payload, seconds = call(url, "/sdapi/v1/txt2img", request, timeout=300)
    text = str(_detail(payload))
    print(f"    {opts.too_many_units} words: HTTP {status} in {seconds:.1f} s: {text[:300]}")
    check.record("units: long prompt refused", 400 <= status < 500 and "phrase" in text and seconds < 60,
                 f"HTTP {status} in {seconds:.1f} s")
    for count in opts.unit_counts:
        request = base_request(opts, PLAIN_SAMPLER, pinning_args(info, opts))
        request.update(prompt=_words(count), negative_prompt="", steps=1, batch_size=1)
        status, payload, seconds = call(url, "/sdapi/v1/txt2img", request, timeout=opts.timeout)
        stages = _run_dir_stages(payload, opts.outputs) if status == 200 else None
        print(f"    {count} units: HTTP {status} in {seconds:.1f} s; stages {stages}", flush=True)
        check.record(f"units: {count}-unit run", status == 200, f"{seconds:.1f} s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860")
    parser.add_argument("--prompt", default="a red circle, on a blue background")
    parser.add_argument("--negative", default="green")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--batch", type=int, default=2, help="images per individual")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--size", type=int, default=64, help="width and height")
    parser.add_argument("--generations", type=int, default=1)
    parser.add_argument("--lambda", dest="lambda_", type=int, default=2)
    parser.add_argument("--cma-seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per generation call")
    parser.add_argument("--interrupt-after", type=float, default=90, help="seconds before interrupting")
    parser.add_argument("--hang-after", type=float, default=20, help="seconds before interrupting 10^9 generations")
    parser.add_argument("--generations-limit", type=int, default=10_000,
                        help="the most generations the extension accepts, named in its refusal")
    parser.add_argument("--hang-limit", type=float, default=180,
                        help="most seconds from that interrupt to the reply")
    parser.add_argument("--too-many-units", type=int, default=400, help="words of the refused prompt")
    parser.add_argument("--unit-counts", type=int, nargs="*", default=[10, 20, 40],
                        help="unit counts of the timed tiny runs")
    parser.add_argument("--outputs", default="",
                        help="the WebUI's outputs folder, when on this machine (infotexts name runs relative to it)")
    a1111_verify_inputs.add_options(parser)
    a1111_verify_lora.add_options(parser)
    parts_all = ["listing", "errors", "plain", "hyperbatch", "img2img", "interrupt", "resume", "paths", "hang",
                 "units", *a1111_verify_inputs.PARTS, *a1111_verify_lora.PARTS]
    parser.add_argument("--only", choices=parts_all, action="append", help="run only these parts (repeatable)")
    opts = parser.parse_args(argv)
    parts = set(opts.only or parts_all)
    if not opts.only and not opts.lora:
        parts.discard("lora")
        print("(no --lora NAME: the lora part is not run)")

    check = Check()
    show_host(opts.url)
    found, hyper = check_listing(opts.url, check)
    if not found["txt2img"]:
        check.summary()
        return 1
    if "errors" in parts:
        check_errors(opts.url, opts, found["txt2img"], check)

    images = []
    if "plain" in parts or "img2img" in parts:
        request = base_request(opts, PLAIN_SAMPLER, pinning_args(found["txt2img"], opts))
        images = run_pinning(opts.url, "/sdapi/v1/txt2img", request, "txt2img plain", opts, check)
    if "hyperbatch" in parts:
        if hyper:
            request = base_request(opts, hyper[0], pinning_args(found["txt2img"], opts))
            run_pinning(opts.url, "/sdapi/v1/txt2img", request, "txt2img hyperbatch", opts, check)
        else:
            check.record("txt2img hyperbatch", False, "no Hyperbatch sampler listed")
    if "img2img" in parts and found["img2img"]:
        init = images[0] if images else _grey_png()
        request = base_request(opts, PLAIN_SAMPLER, pinning_args(found["img2img"], opts))
        request.update(init_images=[init], denoising_strength=0.6)
        run_pinning(opts.url, "/sdapi/v1/img2img", request, "img2img plain", opts, check)
    if "interrupt" in parts:
        check_interrupt(opts.url, opts, found["txt2img"], check)
    if "resume" in parts:
        check_resume(opts.url, opts, found["txt2img"], check)
    if "paths" in parts:
        check_paths(opts.url, opts, found["txt2img"], check)
    if "hang" in parts:
        check_hang(opts.url, opts, found["txt2img"], check)
    if "units" in parts:
        check_units(opts.url, opts, found["txt2img"], check)
    this = sys.modules[__name__]
    for name, part in {**a1111_verify_inputs.PARTS, **a1111_verify_lora.PARTS}.items():
        if name in parts:
            part(this, opts.url, opts, found["txt2img"], check)
    return 0 if check.summary() else 1


def _grey_png(size=64, level=0x80):
    """A plain grey PNG (base64): the img2img input when txt2img gave none, or a target."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    rows = b"".join(b"\x00" + bytes([level]) * size for _ in range(size))  # filter 0, 8-bit grey
    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
           + chunk(b"IEND", b""))
    return base64.b64encode(png).decode()


if __name__ == "__main__":
    sys.exit(main())
