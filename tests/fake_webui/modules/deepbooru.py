"""modules/deepbooru.py: ``model``, the host's DeepDanbooru wrapper (load/start/stop and ``.model``).

The network is a stand-in with a few tags: it maps a (N, 512, 512, 3) batch in
[0, 1] to probabilities read from the colours (red, blue, green: how much the
channel leads the others; long_hair: constant). Its "weights" are a file under
``paths.models_path``; with ``offline`` set and no file, loading fails as the
host's download does without a network.
"""
import os

import torch

from modules import paths

WEIGHTS = "model-resnet_custom_v3.pt"
offline = False  # tests set this to make a missing file undownloadable


class FakeDeepDanbooruModel(torch.nn.Module):
    # red_hair, smile and hat: the tags of docs/api.md's example
    tags = ["red", "blue", "green", "long_hair", "rating:safe", "red_hair", "smile", "hat"]

    def forward(self, x):
        rgb = x.float().mean(dim=(1, 2))  # (N, 3)
        lead = torch.stack([rgb[:, k] - (rgb.sum(1) - rgb[:, k]) / 2 for k in range(3)], dim=1)
        channels = torch.sigmoid(8.0 * lead)
        constant = torch.full((x.shape[0], 2), 0.5)
        return torch.cat([channels, constant, channels[:, :1], constant], dim=1)


class DeepDanbooru:
    def __init__(self):
        self.model = None
        self.loads = 0
        self.starts = 0  # the host moves the model to the GPU on start and back to the CPU on stop
        self.stops = 0

    def load(self):
        if self.model is not None:
            return
        path = os.path.join(paths.models_path, "DeepDanbooru", WEIGHTS)
        if not os.path.isfile(path):
            if offline:
                raise ConnectionError("<urlopen error [Errno -3] Temporary failure in name resolution>")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:  # the "download"
                handle.write(b"weights")
        self.model = FakeDeepDanbooruModel()
        self.loads += 1

    def start(self):
        self.load()
        self.starts += 1

    def stop(self):
        self.stops += 1


model = DeepDanbooru()
