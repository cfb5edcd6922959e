"""Hyperbatch samplers: batches that grow from one image by splitting."""
