"""Where a LiteRT model's time goes: per stage and per op type, plus its peak memory.

Each stage is cut out of the graph and timed as one slice, and every operator alone, in the
interpreter with XNNPACK (`keras_squeezetime.tflite.op_profile`, which says how to read
the two); the whole model is timed too, and its peak memory measured in a bare process
(`measurement.peak_memory_bytes`). BENCHMARKS.md's per-stage int8 times and peak memory
come from here.

Usage:
  python benchmarks/tflite_op_profile.py /tmp/tflite_bench/int8_uint8_stacked.tflite \
      [--threads 2] [--runs 20] [--top 10]
"""

from __future__ import annotations

import argparse
import os
import sys


def main(path: str, threads: int, runs: int, top: int) -> None:
    from keras_squeezetime.tflite import op_profile
    from keras_squeezetime.tflite.measurement import peak_memory_bytes

    with open(path, "rb") as handle:
        model_bytes = handle.read()

    def progress(done, total):
        if done % 50 == 0 or done == total:
            print(f"timed {done}/{total} ops", file=sys.stderr, flush=True)

    rows = op_profile.profile(model_bytes, threads, runs, progress=progress)
    stages = op_profile.group_times(model_bytes, threads, runs)
    whole = op_profile.time_model(model_bytes, threads, runs)
    summed = sum(row.median_ms for row in rows)
    print(f"\n{os.path.basename(path)}: {threads} threads; whole model {whole:.2f} ms (median of "
          f"{runs}); its stages timed as slices sum to {sum(stages.values()):.2f} ms, its "
          f"{len(rows)} ops timed alone to {summed:.2f} ms; peak memory added "
          f"{peak_memory_bytes(path, threads) / 1e6:.1f} MB\n")
    print("| stage | ms (slice) | share of the whole model |\n|---|---|---|")
    for stage, milliseconds in stages.items():
        print(f"| {stage} | {milliseconds:.2f} | {milliseconds / whole:.1%} |")
    print()
    for key, title in (("op", "op"),):
        print(f"| {title} | ops | ms (ops alone) | share |")
        print("|---|---|---|---|")
        for value, (count, milliseconds) in op_profile.totals(rows, key).items():
            print(f"| {value} | {count} | {milliseconds:.2f} | {milliseconds / summed:.1%} |")
        print()
    print("| slowest ops | dtype | stage | ms |\n|---|---|---|---|")
    for row in sorted(rows, key=lambda r: -r.median_ms)[:top]:
        print(f"| {row.op} {row.output[-60:]} | {row.dtype} | {row.group} | {row.median_ms:.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="A .tflite file.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--top", type=int, default=10, help="Slowest ops to list.")
    args = parser.parse_args()
    main(args.model, args.threads, args.runs, args.top)
