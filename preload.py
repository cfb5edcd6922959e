"""Command-line options of the prompt pinning extension.

A1111 calls ``preload(parser)`` with its argparse parser before the arguments
are parsed, while ``modules.shared`` is still importing: only the parser may be
used here (the samplers are registered later, when the Script loads). The
limits come from the option schema (``prompt_pinning/options.py``).
"""
import os
import sys

EXTENSION_ROOT = os.path.dirname(os.path.abspath(__file__))


def _schema():
    """The option schema (A1111 has imported torch by now, which the package needs)."""
    if EXTENSION_ROOT not in sys.path:
        sys.path.append(EXTENSION_ROOT)
    from prompt_pinning import options

    return options


def preload(parser):
    option = _schema().OPTION["max_images_per_call"]
    group = parser.add_argument_group("prompt pinning")
    group.add_argument(
        "--prompt-pinning-max-images-per-call", type=int, default=0, metavar="N",
        help=f"prompt pinning: {option.hint[0].lower()}{option.hint[1:].rstrip('.')}; "
             f"{option.minimum} to {option.maximum}, 0 = from free GPU memory, or 1 individual per call on CPU",
    )
    group.add_argument(
        "--prompt-pinning-no-samplers", action="store_true", default=False,
        help="prompt pinning: do not add the Hyperbatch samplers to the sampler list",
    )
