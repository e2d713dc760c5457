"""Checkpoint-format converters: any Twins or DaViT weight file to mmtwins keys."""
