"""The WebUI shows the engine's logbook lines on its console for a run, and only for the run."""
import logging

import webui_stand_in

webui_stand_in.install()

from prompt_pinning_webui.webui_run import _cma_log_shown  # noqa: E402


def test_the_console_handler_lives_as_long_as_the_run(caplog):
    engine_log = logging.getLogger("prompt_pinning")
    before = (list(engine_log.handlers), engine_log.level, engine_log.propagate)
    with _cma_log_shown(True):
        assert len(engine_log.handlers) == len(before[0]) + 1 and not engine_log.propagate
        assert engine_log.isEnabledFor(logging.INFO)
    assert (list(engine_log.handlers), engine_log.level, engine_log.propagate) == before
    # after a run, the engine's records reach the root logger again (pytest's caplog included)
    with caplog.at_level(logging.INFO, logger="prompt_pinning"):
        logging.getLogger("prompt_pinning.run").info("after the run")
    assert "after the run" in caplog.text
    with _cma_log_shown(False):
        assert (list(engine_log.handlers), engine_log.propagate) == (before[0], before[2])
