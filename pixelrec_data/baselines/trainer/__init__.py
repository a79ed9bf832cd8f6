"""Running a training: the loop and the run folder (train), torch.compile of the hot paths
(compile), torch.distributed glue (ddp), and train.log / provenance.json (runlog). Its inputs come
from the data room."""
