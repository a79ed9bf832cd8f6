"""The trainer's inputs, below the trainer, the models and evaluation, which all read them: a
release's interactions in the paper's formats (interactions) and training batches per format
(samples)."""
