"""A stop is seen inside one individual's scoring, between the loss's chunks of work."""
import pytest

from prompt_pinning.score import flip
from prompt_pinning.score.loss import PinningLoss
from prompt_pinning.run import run_pinning
from prompt_pinning.run.builders import Builders


class Stop(Exception):
    pass


def counting_pair_chunks(monkeypatch):
    chunks = []
    sliced = flip._sliced

    def spy(*args, **kwargs):
        chunks.append(1)
        return sliced(*args, **kwargs)

    monkeypatch.setattr(flip, "_sliced", spy)
    return chunks


def test_one_individuals_pairs_stop_between_chunks(crops, monkeypatch):
    chunks = counting_pair_chunks(monkeypatch)
    loss = PinningLoss(max_pairs_per_chunk=2, variant="consistency")
    loss.evaluate(crops)  # 10 images, 45 pairs: 25 runs of at most 2 pairs
    everything = len(chunks)
    chunks.clear()
    calls = []

    def check_stop():
        calls.append(1)
        if len(calls) == 3:
            raise Stop()

    loss.check_stop = check_stop
    with pytest.raises(Stop):
        loss.evaluate(crops)
    assert everything > 10 and len(chunks) <= 3


def test_preprocessing_of_a_large_batch_stops_between_chunks(crops):
    loss = PinningLoss(max_pairs_per_chunk=4, variant="consistency")
    calls = []

    def check_stop():
        calls.append(1)
        raise Stop()

    loss.check_stop = check_stop
    budget = flip.preprocess_chunk_size(crops.device, *crops.shape[2:], budget_bytes=None)
    images = crops.repeat(budget // len(crops) + 2, 1, 1, 1)  # more than one preprocessing chunk
    with pytest.raises(Stop):
        flip.preprocess(images, between_chunks=loss.check_stop)
    assert calls == [1]


def test_a_run_stops_inside_the_scoring_of_one_large_individual(outdir, monkeypatch):
    from test_run import FakeRenderer, FakeVector, make_config

    requested = []
    calls = []

    class OneBigIndividualLoss:
        """Stands for a batch whose pairs take minutes: a stop arrives in the middle."""

        check_stop = None

        def set_targets(self, images, seeds=None):
            pass

        def evaluate_many(self, images_list, traces_list, seeds_list=None):
            for chunk in range(100):
                calls.append(chunk)
                if chunk == 3:
                    requested.append(True)
                if self.check_stop is not None:
                    self.check_stop()
            raise AssertionError("scored every chunk although a stop was requested")

        def evaluate(self, images, traces=None, seeds=None):
            return self.evaluate_many([images], [traces], [seeds])[0]

    builders = Builders(vector=lambda config, renderer: FakeVector(config.positive, config.negative),
                        targets=lambda config: None, loss=lambda config, targets: OneBigIndividualLoss())
    result = run_pinning(make_config(outdir, generations=1, lambda_=2), FakeRenderer(),
                         should_stop=lambda: bool(requested), raise_errors=False, builders=builders)
    assert result.stop_reason == "interrupted"
    assert calls == [0, 1, 2, 3]
