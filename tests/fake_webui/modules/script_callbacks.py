"""on_before_ui / on_app_started / on_infotext_pasted registration as in modules/script_callbacks.py."""
callbacks_before_ui = []
callbacks_app_started = []
callbacks_infotext_pasted = []


def on_before_ui(callback, *, name=None):
    callbacks_before_ui.append(callback)


def on_app_started(callback, *, name=None):
    callbacks_app_started.append(callback)


def on_infotext_pasted(callback, *, name=None):
    callbacks_infotext_pasted.append(callback)


def infotext_pasted_callback(infotext, params):
    for callback in callbacks_infotext_pasted:
        callback(infotext, params)


def before_ui_callback():
    for callback in callbacks_before_ui:
        callback()


def clear_callbacks():
    callbacks_before_ui.clear()
    callbacks_app_started.clear()
    callbacks_infotext_pasted.clear()
