"""modules/paths.py: ``models_path``, where the host keeps model weights (a temporary folder here)."""
import tempfile

models_path = tempfile.mkdtemp(prefix="fake-webui-models-")
