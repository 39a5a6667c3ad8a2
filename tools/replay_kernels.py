"""How far a replay of a stored experiment run drifts when the CPU's kernels change.

    python tools/replay_kernels.py [--run spec-seed0] [--steps 6]

Trains the first steps of a stored run (dsnet/experiment_runs/RUN.json) again in a fresh process
under each kernel setting below: the native one; one thread; ATen's portable kernels
(ATEN_CPU_CAPABILITY=default); and those with oneDNN and MKL held to AVX2, as on an older CPU.
Writes the largest relative difference from the stored losses per setting to
dsnet/experiment_runs/replay_kernels.json, which the Experiments chapter reads: it is the evidence
for the replay's tolerance (dsnet.experiments.REPLAY_RTOL).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

SETTINGS = {
    "native": {},
    "1 thread": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    "ATEN_CPU_CAPABILITY=default": {"ATEN_CPU_CAPABILITY": "default"},
    "portable ATen, oneDNN and MKL at AVX2": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "AVX2",
                                              "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}
CHILD = ("import json, sys; from dsnet.experiments import replay_steps, stored_runs; "
         "record = json.loads((stored_runs() / (sys.argv[1] + '.json')).read_text()); "
         "print(json.dumps(replay_steps(record, int(sys.argv[2]))))")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="spec-seed0", help="stored run to replay (default spec-seed0)")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps to replay (default 6)")
    args = parser.parse_args(argv)
    from dsnet.experiments import machine, stored_runs

    stored = json.loads((stored_runs() / f"{args.run}.json").read_text())["step_losses"][:args.steps]
    results = {}
    for name, env in SETTINGS.items():
        out = subprocess.run([sys.executable, "-c", CHILD, args.run, str(args.steps)], env={**os.environ, **env},
                             capture_output=True, text=True, check=True).stdout
        fresh = json.loads(out.strip().splitlines()[-1])
        drift = [abs(f - s) / abs(s) for f, s in zip(fresh, stored)]
        results[name] = {"env": env, "max_relative_difference": max(drift), "relative_differences": drift}
        print(f"{name:<40} largest relative difference {max(drift):.2e}", flush=True)
    report = {"run": args.run, "steps": args.steps, "settings": results, "machine": machine(),
              "command": f"python tools/replay_kernels.py --run {args.run} --steps {args.steps}"}
    path = stored_runs() / "replay_kernels.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
