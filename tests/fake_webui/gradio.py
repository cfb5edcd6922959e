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
