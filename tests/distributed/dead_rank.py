"""Run under ``mpiexec -n 2``: rank 1 leaves without taking part, rank 0's allreduce must
give up after the time limit with a message, and end the job (exit status 3)."""
import sys
import time

import numpy as np

from minigan.distributed import CommTimeout, MPIComm

comm = MPIComm(timeout=float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
if comm.rank == 1:
    time.sleep(0.2)
    sys.exit(0)
t0 = time.monotonic()
try:
    comm.allreduce(np.ones(1000, np.float32))
except CommTimeout as e:
    print(f"timed out after {time.monotonic() - t0:.1f} s: {e}", flush=True)
    comm.abort(3)
print("no time-out", flush=True)
sys.exit(1)
