"""The input checks of ``a1111_verify.py`` that need the real host (parts decoders, prompt-size, public).

  decoders     targets in formats other than PNG/JPEG/WebP (EPS, TIFF, PSD, ICO, BMP, GIF), as base64
               strings and as Gradio data dicts, are refused with HTTP 422 saying so, and no other
               decoder ran: with --gs-marker, the host's ``gs`` (a stand-in that creates that file)
               must not have run
  prompt-size  a 3 kB prompt of combining accents (two words) and a prompt over the character limit
               are refused with HTTP 422 within seconds, naming the limit
  public       refusals and a failed render name no absolute server path and carry no traceback; a
               run's infotext names its report relative to the outputs folder; a render that fails
               (a size the host cannot hold) is a clear error naming the cause, not a bare HTTP 500
Standard library only, like ``a1111_verify.py``.
"""
import base64
import os
import re
import struct
import time

# An absolute POSIX path in a message (a slash after a start, space, quote or bracket).
ABSOLUTE_PATH = re.compile(r"(?:^|[\s'\"(\[=])(/[A-Za-z0-9_.-]+/[^\s'\",)]*)")


def _eps():
    """A small EPS: Ghostscript would render it (a stand-in ``gs`` leaves its marker instead)."""
    return (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n%%EndComments\n"
            b"0.5 setgray 0 0 8 8 rectfill\nshowpage\n%%EOF\n")


def _tiff():
    """A 1x1 8-bit grey TIFF, little-endian, uncompressed."""
    entries = [(256, 3, 1, 1), (257, 3, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 9 + 4), (277, 3, 1, 1), (278, 3, 1, 1), (279, 4, 1, 1)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x80"


def _bmp():
    """A 1x1 24-bit BMP."""
    pixels = b"\x80\x80\x80\x00"
    header = struct.pack("<IiiHHIIiiII", 40, 1, 1, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + len(pixels), 0, 0, 54) + header + pixels


def _ico():
    """A 1x1 24-bit icon: a directory entry, then a BMP header of twice the height, pixels and mask."""
    data = struct.pack("<IiiHHIIiiII", 40, 1, 2, 1, 24, 0, 8, 0, 0, 0, 0) + b"\x80\x80\x80\x00" + b"\x00" * 4
    return b"\x00\x00\x01\x00\x01\x00" + struct.pack("<BBBBHHII", 1, 1, 0, 0, 1, 24, len(data), 22) + data


OTHER_FORMATS = {
    "EPS": _eps(),
    "TIFF": _tiff(),
    "PSD": b"8BPS\x00\x01" + b"\x00" * 6 + struct.pack(">HIIHH", 3, 1, 1, 8, 3) + b"\x00" * 16,
    "ICO": _ico(),
    "BMP": _bmp(),
    "GIF": b"GIF89a\x01\x00\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;",
}
REFUSAL = "not a PNG, JPEG or WebP image"


def check_decoders(v, url, opts, info, check):
    """Every other format is refused by name before any decoder but PNG/JPEG/WebP sees it."""
    marker = opts.gs_marker
    if marker and os.path.exists(marker):
        os.remove(marker)
    results = {}
    for fmt, data in OTHER_FORMATS.items():
        encoded = base64.b64encode(data).decode()
        for form, target in (("base64", encoded), ("data dict", {"data": "data:image/png;base64," + encoded})):
            args = v.script_args_from(info, {"targets": [target], "generations": 1, "lambda_": 2})
            status, payload, seconds = v.call(url, "/sdapi/v1/txt2img", v.base_request(opts, v.PLAIN_SAMPLER, args),
                                              timeout=120)
            detail = str(v._detail(payload))
            results[(fmt, form)] = status == 422 and REFUSAL in detail
            print(f"    {fmt} as {form}: HTTP {status} in {seconds:.1f} s: {detail[:200]}")
    refused = [key for key, ok in results.items() if ok]
    check.record("decoders: other formats refused by name", len(refused) == len(results),
                 f"{len(refused)} of {len(results)}")
    if marker:
        check.record("decoders: Ghostscript never ran", not os.path.exists(marker), f"marker {marker}")
    else:
        print("    (no --gs-marker: whether the host's gs ran is not checked)")


def check_prompt_size(v, url, opts, info, check):
    """Pathological and over-long prompts are refused in seconds, naming the limit."""
    cases = {"combining accents, 3 kB": ("cat " + "e\u0301" * 1000, "longer than"),
             "4,001 characters": ("red " * 1000 + "x", "characters; at most")}
    for name, (prompt, expected) in cases.items():
        request = v.base_request(opts, v.PLAIN_SAMPLER, v.pinning_args(info, opts))
        request["prompt"] = prompt
        status, payload, seconds = v.call(url, "/sdapi/v1/txt2img", request, timeout=300)
        detail = str(v._detail(payload))
        print(f"    {name}: HTTP {status} in {seconds:.1f} s: {detail[:300]}")
        check.record(f"prompt-size: {name} refused", status == 422 and expected in detail and seconds < 10,
                     f"HTTP {status} in {seconds:.1f} s")


def _no_server_paths(text):
    """The absolute paths in ``text`` (none is expected)."""
    return ABSOLUTE_PATH.findall(text)


def check_public(v, url, opts, info, check):
    """No absolute server path or traceback in answers; a failed render names its cause."""
    resume = v.arg_index(info, "resume")
    for name, folder in (("outside the outputs", "/etc"), ("missing", "txt2img-images/prompt_pins/99999999")):
        args = v.pinning_args(info, opts)
        args[resume] = folder
        status, payload, _ = v.call(url, "/sdapi/v1/txt2img", v.base_request(opts, v.PLAIN_SAMPLER, args))
        detail = str(v._detail(payload))
        found = _no_server_paths(detail)
        check.record(f"public: resume {name} refused without server paths", 400 <= status < 500 and not found,
                     f"HTTP {status}: {detail[:300]}" + (f"; paths {found}" if found else ""))
    request = v.base_request(opts, v.PLAIN_SAMPLER, v.pinning_args(info, opts))
    status, payload, _ = v.call(url, "/sdapi/v1/txt2img", request, timeout=opts.timeout)
    report = v.info_value(payload, "Pinning report") if status == 200 else None
    check.record("public: infotext names the report relative to the outputs",
                 bool(report) and not report.startswith("/") and "prompt_pins/" in report, f"{report}")
    request = v.base_request(opts, v.PLAIN_SAMPLER, v.script_args_from(
        info, {"generations": 1, "lambda_": 2, "validation_batches": 0}))
    request.update(width=opts.fail_size, height=opts.fail_size, batch_size=1, steps=1)
    started = time.monotonic()
    status, payload, seconds = v.call(url, "/sdapi/v1/txt2img", request, timeout=opts.timeout)
    body = str(payload)
    detail = str(v._detail(payload))
    print(f"    {opts.fail_size}x{opts.fail_size}: HTTP {status} in {time.monotonic() - started:.1f} s: {detail[:400]}")
    if status == 200:
        return check.record("public: a failed render is a clear error", False,
                            f"the host rendered {opts.fail_size}x{opts.fail_size}; pass a larger --fail-size")
    found = _no_server_paths(body)
    check.record("public: a failed render is a clear error", status in (422, 500)
                 and "before the run had any image" in detail and "Traceback" not in body and not found,
                 f"HTTP {status}" + (f"; paths {found}" if found else ""))


def add_options(parser):
    parser.add_argument("--gs-marker", default="",
                        help="a file the host's gs (a stand-in on its PATH) creates when run; checked absent")
    parser.add_argument("--fail-size", type=int, default=8192,
                        help="width and height of the render that must fail (too large for the host)")


PARTS = {"decoders": check_decoders, "prompt-size": check_prompt_size, "public": check_public}
