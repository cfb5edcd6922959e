"""modules/sd_hijack.py: ``model_hijack.embedding_db.word_embeddings`` (name -> embedding with ``vectors``)."""
from types import SimpleNamespace


class StableDiffusionModelHijack:
    def __init__(self):
        self.embedding_db = SimpleNamespace(word_embeddings={})


model_hijack = StableDiffusionModelHijack()
