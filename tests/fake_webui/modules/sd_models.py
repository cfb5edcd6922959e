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
