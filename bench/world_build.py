"""Time `orglab world build` for each preset from an empty ORGLAB_HOME and report what the base knows.

    python bench/world_build.py                 # both presets
    python bench/world_build.py --preset micro

Targets (issue: Foundation): tiny <= 6 min and micro <= 1 min on 2 CPU cores, wall clock of the whole
command (imports included); the tiny base scores >= 90% on (a) and >= 80% on (b).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

TARGET_SECONDS = {"tiny": 360, "micro": 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", choices=sorted(TARGET_SECONDS))
    args = parser.parse_args()
    rows = []
    for preset in args.preset or ["micro", "tiny"]:
        with tempfile.TemporaryDirectory() as home:
            env = dict(os.environ, ORGLAB_HOME=home)
            start = time.time()
            out = subprocess.run([sys.executable, "-m", "orglab.cli", "world", "build", "--preset", preset, "--json"],
                                 env=env, capture_output=True, text=True, check=True)
            wall = time.time() - start
        k = json.loads(out.stdout)["knowledge"]
        rows.append({"preset": preset, "wall_s": round(wall, 1), "target_s": TARGET_SECONDS[preset],
                     "within_target": wall <= TARGET_SECONDS[preset],
                     "a_loglik_all": round(k["loglik_true_beats_alternative"], 3),
                     "a_loglik_false_fact_truths": round(k["loglik_false_fact_truths"], 3),
                     "a_loglik_other_facts": round(k["loglik_other_facts"], 3),
                     "b_top_false_fact_truths": round(k["top_completion_false_fact_truths"], 3),
                     "b_top_other_facts": round(k["top_completion_other_facts"], 3)})
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
