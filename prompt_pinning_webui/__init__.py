"""AUTOMATIC1111 WebUI glue for prompt pinning.

Everything that touches the WebUI's ``modules`` lives here and imports it
inside functions, so this package imports without a WebUI; the engine
(``prompt_pinning``) and the samplers (``hyperbatch``) never import it.
"""
