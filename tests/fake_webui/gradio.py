"""A recording stand-in for the few gradio 3.41 components the Script creates (tests only)."""
created = []


class Component:
    def __init__(self, *args, **kwargs):
        self.kind = type(self).__name__
        self.args = args
        self.kwargs = kwargs
        self.value = kwargs.get("value", args[0] if args else None)
        self.label = kwargs.get("label")
        self.events = []
        created.append(self)

    def click(self, fn=None, inputs=None, outputs=None, **kwargs):
        self.events.append(("click", fn, inputs, outputs))

    def change(self, fn=None, inputs=None, outputs=None, **kwargs):
        self.events.append(("change", fn, inputs, outputs))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class File(Component): pass
class Checkbox(Component): pass
class Dropdown(Component): pass
class Number(Component): pass
class Textbox(Component): pass
class HTML(Component): pass
class Button(Component): pass
class Accordion(Component): pass
class Blocks(Component): pass


class App:
    """The running Gradio app (``shared.demo``) as far as uploads go.

    Gradio 3.41 copies every uploaded file into a temporary folder of its own
    and records the copy's absolute path in one set per component; the list
    of those sets is ``Blocks.temp_file_sets``.
    """

    def __init__(self):
        self.temp_file_sets = [set()]
        self.upload_dir = None

    def upload(self, data: bytes, suffix: str = ".png"):
        """Store ``data`` as Gradio does for an upload; returns the file object the Script gets."""
        import os
        import tempfile

        if self.upload_dir is None:
            self.upload_dir = tempfile.mkdtemp(prefix="gradio-uploads-")
        handle = tempfile.NamedTemporaryFile(delete=False, suffix=suffix, dir=self.upload_dir)
        with handle:
            handle.write(data)
        self.temp_file_sets[0].add(os.path.abspath(handle.name))
        return handle


class Gallery(Component): pass
class Row(Component): pass


def update(**kwargs):
    return {"__type__": "update", **kwargs}
