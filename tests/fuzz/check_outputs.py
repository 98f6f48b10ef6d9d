#!/usr/bin/python3
"""Reads what stats_fuzz wrote for each seed (SLABBY_FUZZ_DUMP=DIR) with the
real parsers: every .json with Python's json module (strict UTF-8, duplicate
keys refused), every .prom with prometheus_client's text parser, whose sample
count must match the exposition's sample lines. Exit status 1 on any failure.

Usage: tests/fuzz/check_outputs.py DIR
"""
import json
import os
import sys

from prometheus_client.parser import text_string_to_metric_families


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate keys in an object: {sorted(k for k in keys if keys.count(k) > 1)[:3]}")
    return dict(pairs)


def main():
    d = sys.argv[1]
    names = sorted(os.listdir(d))
    n_json = n_prom = samples = 0
    bad = []
    for name in names:
        path = os.path.join(d, name)
        with open(path, "rb") as f:
            raw = f.read()
        try:
            text = raw.decode("utf-8")  # strict: invalid UTF-8 fails here
            if name.endswith(".json"):
                obj = json.loads(text, object_pairs_hook=no_duplicates)
                if not isinstance(obj, dict) or "classes" not in obj or "health" not in obj:
                    raise ValueError("not the stats object")
                n_json += 1
            elif name.endswith(".prom"):
                lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
                got = sum(len(fam.samples) for fam in text_string_to_metric_families(text))
                if got != len(lines):
                    raise ValueError(f"prometheus_client read {got} samples of {len(lines)} lines")
                samples += got
                n_prom += 1
        except Exception as e:  # noqa: BLE001 - every parser error is a failure
            bad.append(f"{name}: {type(e).__name__}: {e}")
    if n_json == 0 or n_prom == 0:
        bad.append(f"nothing to read in {d}")
    for b in bad[:10]:
        print(f"check_outputs: {b}")
    print(f"check_outputs: {n_json} JSON reports read by json, {n_prom} expositions "
          f"({samples} samples) by prometheus_client; {len(bad)} failures")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
