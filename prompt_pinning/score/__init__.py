"""The score: LDR-FLIP, the pinning loss over a batch and its targets, and target images."""
