"""on_before_ui / on_app_started registration as in modules/script_callbacks.py."""
callbacks_before_ui = []
callbacks_app_started = []


def on_before_ui(callback, *, name=None):
    callbacks_before_ui.append(callback)


def on_app_started(callback, *, name=None):
    callbacks_app_started.append(callback)


def before_ui_callback():
    for callback in callbacks_before_ui:
        callback()


def clear_callbacks():
    callbacks_before_ui.clear()
    callbacks_app_started.clear()
