"""modules.ui_tempdir: only ``check_tmp_file``, with the v1.10.1 semantics.

A file counts as Gradio's own when its name, exactly as given, is in one of
the app's ``temp_file_sets`` (the branch of the real function that Gradio 3.41
takes); any other name, app or Gradio version gives False.
"""


def check_tmp_file(gradio, filename):
    sets = getattr(gradio, "temp_file_sets", None)
    if sets is None:
        return False
    return any(filename in names for names in sets)
