"""Command-line options of the prompt pinning extension.

A1111 calls ``preload(parser)`` with its argparse parser before the arguments
are parsed, while ``modules.shared`` is still importing: only the parser may be
used here (the samplers are registered later, when the Script loads).
"""


def preload(parser):
    group = parser.add_argument_group("prompt pinning")
    group.add_argument(
        "--prompt-pinning-max-images-per-call", type=int, default=0, metavar="N",
        help="prompt pinning: most images rendered in one sampler call (several individuals "
             "packed together); 0 = from free GPU memory, or 1 individual per call on CPU",
    )
    group.add_argument(
        "--prompt-pinning-no-samplers", action="store_true", default=False,
        help="prompt pinning: do not add the Hyperbatch samplers to the sampler list",
    )
