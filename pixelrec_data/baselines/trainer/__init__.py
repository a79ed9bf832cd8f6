"""Running a training: the loop and the run folder (train), the data in the paper's formats
(data), training batches per format (samples), torch.compile of the hot paths (compile),
torch.distributed glue (ddp), and train.log / provenance.json (runlog)."""
