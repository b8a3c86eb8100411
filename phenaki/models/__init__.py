"""The networks: attention, the C-ViViT tokenizer and its quantizer, MaskGit and its critics, text encoders."""
