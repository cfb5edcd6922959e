"""modules/safe.py: the host's checked ``torch.load``.

As in v1.10.1, the file is first unpickled with a restricted unpickler that
accepts only a short list of globals (OrderedDict, tensor rebuilding, torch
storages, numpy arrays, dtypes and scalars). Anything else fails the check, and
the loader then prints the error and returns None instead of raising. The real
host replaces ``torch.load`` for the whole process; here ``active()`` does so
while a test runs the Script. The original stays in ``unsafe_torch_load``.
"""
import contextlib
import pickle
import sys
import zipfile

import torch

unsafe_torch_load = torch.load
loaded = []  # tests: every filename given to the checked loader
rejected = []  # tests: (filename, error) of every refused file

_ALLOWED = {
    ("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"), ("torch._tensor", "_rebuild_from_type_v2"),
    ("numpy.core.multiarray", "scalar"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "dtype"), ("numpy", "ndarray"), ("_codecs", "encode"),
}


class RestrictedUnpickler(pickle.Unpickler):
    def persistent_load(self, saved_id):
        if not saved_id or saved_id[0] != "storage":
            raise Exception(f"unexpected persistent id {saved_id!r}")
        return torch.storage.TypedStorage(_internal=True)  # an empty stand-in: only the globals are checked

    def find_class(self, module, name):
        if (module, name) in _ALLOWED or (module == "torch" and name.endswith("Storage")):
            return super().find_class(module, name)
        raise Exception(f"global '{module}/{name}' is forbidden")


def check(filename):
    with zipfile.ZipFile(filename) as archive:
        names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(names) != 1:
            raise Exception(f"expected one data.pkl in {filename}, found {len(names)}")
        with archive.open(names[0]) as handle:
            RestrictedUnpickler(handle).load()


def load(filename, *args, **kwargs):
    loaded.append(str(filename))
    try:
        check(filename)
    except Exception as error:
        rejected.append((str(filename), str(error)))
        print(f"Error verifying pickled file from {filename}: {error}", file=sys.stderr)
        return None
    return unsafe_torch_load(filename, *args, **kwargs)


@contextlib.contextmanager
def active():
    torch.load = load
    try:
        yield
    finally:
        torch.load = unsafe_torch_load

