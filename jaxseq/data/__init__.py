"""Data: corpora by name (`corpora`), their TFDS builders (`datasets`), the embedded numbers
corpus (`synthetic`), word and SentencePiece tokenizers (`vocab`, `tokenizers`), and the grain
pipeline that turns token ids into length-bucketed batches (`input_pipeline`)."""
