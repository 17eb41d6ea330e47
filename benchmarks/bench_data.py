"""Data-layer timings on the synthetic default: synth, load_wvs, prepare.

Speed targets are checked here, not by timed tests. Run: ``python benchmarks/bench_data.py``.
Targets: synth + write < 3 s; prepare (load + subgroups + modal + diversity + samples) < 5 s.
"""

import tempfile
import time
from pathlib import Path

from sgvalues import data, synthetic
from sgvalues.prepare import prepare


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        synthetic.write_sample(tmp / "sample.csv", n=2012, seed=0)
        t1 = time.perf_counter()
        data.load_wvs(tmp / "sample.csv")
        t2 = time.perf_counter()
        c2 = time.process_time()
        prepare(tmp / "sample.csv", tmp / "prepared")
        t3 = time.perf_counter()
        c3 = time.process_time()
    print(f"synth + write (2,012 rows)   {t1 - t0:6.2f} s   target < 3 s   ratio {(t1 - t0) / 3:.2f}")
    print(f"load_wvs                      {t2 - t1:6.2f} s")
    print(f"prepare (end to end)          {t3 - t2:6.2f} s   target < 5 s   ratio {(t3 - t2) / 5:.2f}"
          f"   (CPU time {c3 - c2:.2f} s; wall exceeds CPU when other jobs share the cores)")


if __name__ == "__main__":
    main()
