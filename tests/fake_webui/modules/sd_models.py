"""modules/sd_models.py (A1111 v1.10.1): ``model_data`` holds the loaded model; no ``forge_model_reload``.

``tests/forge_stand_in.py`` adds Forge's ``FakeInitialModel`` and ``forge_model_reload``.
"""


class SdModelData:
    def __init__(self):
        self.sd_model = None

    def get_sd_model(self):
        return self.sd_model

    def set_sd_model(self, value):
        self.sd_model = value


model_data = SdModelData()


class CheckpointInfo:
    """A checkpoint the host lists: its title and short hash (A1111 ``sd_models.CheckpointInfo``)."""

    def __init__(self, title, shorthash):
        self.title, self.shorthash = title, shorthash


checkpoints_list = {}  # title -> CheckpointInfo; tests add to it


def get_closet_checkpoint_match(search_string):
    """The host's lookup of a checkpoint by (part of) its title, as an override names it."""
    for title, info in sorted(checkpoints_list.items()):
        if search_string in title:
            return info
    return None
