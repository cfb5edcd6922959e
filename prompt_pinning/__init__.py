"""Prompt pinning: find the prompt weights that pin a prompt to a visual target."""

__version__ = "0.1.0"
