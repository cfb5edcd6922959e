"""The search: CMA-ES over the weight offsets, seed blocks, and starting from an earlier run."""
