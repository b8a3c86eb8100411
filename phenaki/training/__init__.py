"""Training: the trainers (tokenizer, transformers, decoder), their datasets and the named model sizes."""
