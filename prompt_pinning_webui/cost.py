"""The panel's live cost line: N, the auto values it implies, the renders and the time at the last speed."""
from __future__ import annotations

import html
import time
from typing import Any, Optional

# Seconds per image per sampling step of the last pinning run in this WebUI, and its image size
# (empty before the first). A speed holds for its own size only: a 64x64 run says nothing of 512x512.
_last_speed: dict[str, Any] = {}


def record_speed(seconds: float, images: int, steps: int, size: Optional[tuple[int, int]] = None) -> None:
    if seconds > 0 and images > 0 and steps > 0:
        _last_speed.update(per_image_step=seconds / (images * steps), size=size)


def last_speed(size: Optional[tuple[int, int]] = None) -> Optional[float]:
    """The last run's speed, if it was measured at ``size`` (any size when either is unknown)."""
    measured = _last_speed.get("size")
    if size is not None and measured is not None and tuple(measured) != tuple(size):
        return None
    return _last_speed.get("per_image_step")


class Stopwatch:
    def __init__(self):
        self.started = time.monotonic()

    def seconds(self) -> float:
        return time.monotonic() - self.started


def _whole(value: Any) -> Optional[int]:
    """A typed number (text or number); None for empty, 0 or not a number (auto)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number >= 1 and number.is_integer() else None


def run_plan(n: int, generations: Any = None, lambda_: Any = None, validation_batches: Any = 1) -> dict[str, int]:
    """Generations, candidates and renders of a run over N units with these (possibly auto) settings."""
    from prompt_pinning.config import PinningConfig
    from prompt_pinning.run.plan import make_plan
    from prompt_pinning.search.optimizer import make_optimizer, resolve_generations

    try:
        batches = max(0, int(float(validation_batches)))
    except (TypeError, ValueError):
        batches = 1  # the option's default
    # the option schema's limits first: a typed 10^8 must not plan a run of 10^8 generations
    config = PinningConfig(positive="", generations=_whole(generations), lambda_=_whole(lambda_),
                           validation_batches=batches).validate()
    optimizer = make_optimizer(config, n, 0)
    plan = make_plan(config, n, optimizer, resolve_generations(config, n))
    return {"N": n, "generations": plan.generations, "lambda_": plan.population, "mu": optimizer.resolved["mu"],
            "renders": plan.total}


def cost_html(n: int, plan: dict[str, int], batch_size: int, steps: int,
              size: Optional[tuple[int, int]] = None) -> str:
    minutes = ""
    speed = last_speed(size)
    if speed is not None:
        estimate = speed * plan["renders"] * batch_size * steps / 60
        minutes = f"; about {max(1, round(estimate))} minutes at your last speed"
    elif _last_speed.get("size") and size:
        minutes = "; no time yet at {}x{} (last run: {}x{})".format(*size, *_last_speed["size"])
    generations = f"{plan['generations']} generation" + ("" if plan["generations"] == 1 else "s")
    return (f"<p class='prompt-pinning-cost'><b>{n}</b> pinnable unit{'' if n == 1 else 's'} &rarr; auto: "
            f"{generations} of {plan['lambda_']} candidates. "
            f"Cost: about {plan['renders']:,} renders of batch {batch_size}{minutes}.</p>")


def describe_cost(positive: str, negative: str, unit_mode: str, generations: Any = None, lambda_: Any = None,
                  validation_batches: Any = 1, batch_size: Any = 1, steps: Any = 20, width: Any = None,
                  height: Any = None) -> str:
    """The cost line for the prompt as typed, or why it cannot be counted (never raises)."""
    try:
        from prompt_pinning.prompt.weights import PromptVector

        from .tokenizer import HostTokenizer

        if not (positive or "").strip() and not (negative or "").strip():
            return "<p class='prompt-pinning-cost'>Type a prompt to see what a run costs.</p>"
        # never loads a checkpoint from a UI event (Forge loads it at the first generation)
        vector = PromptVector.from_prompts(positive, negative, HostTokenizer.from_model(load=False), unit_mode)
        plan = run_plan(vector.size, generations, lambda_, validation_batches)
        size = (_whole(width), _whole(height))
        return cost_html(vector.size, plan, _whole(batch_size) or 1, _whole(steps) or 1, size if all(size) else None)
    except Exception as error:  # shown to the user, not raised
        from prompt_pinning.options import ConfigError

        from .panel import setting_error

        if isinstance(error, ConfigError):  # in the panel's words: the field's label, what it takes
            error = setting_error(error.option, error.reason)
        return f"<p class='prompt-pinning-cost'>Cannot count the cost yet: {html.escape(str(error))}</p>"
