"""One training run: backbone, loop, one-cycle, lr_find, metrics, checkpoints, and the thin Ray Train shell."""
