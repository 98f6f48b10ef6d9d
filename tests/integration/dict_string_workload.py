"""Dict- and string-heavy Python workload for slabby's integration tests.

Run by run_program.py (scenarios `python` and `python_malloc`) once on glibc
and once under LD_PRELOAD=libslabby_malloc.so; the two stdouts must be
byte-identical. Everything printed is deterministic: a seeded PRNG, no set or
hash-order iteration, no addresses, no timings.

Usage: python3 dict_string_workload.py [SCALE]   (SCALE defaults to 1.0)
"""

import hashlib
import json
import random
import sys
import zlib


def digest(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


def make_vocab(rng, n):
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = []
    seen = {}
    while len(vocab) < n:
        w = "".join(rng.choice(letters) for _ in range(rng.randint(2, 9)))
        if w not in seen:
            seen[w] = len(vocab)
            vocab.append(w)
    return vocab


def phase_word_counts(rng, vocab, n_words):
    # Zipf-ish choice: small indices are much more frequent.
    words = [vocab[int(len(vocab) * rng.random() ** 3)] for _ in range(n_words)]
    text = " ".join(words)
    counts = {}
    for w in text.split(" "):
        counts[w] = counts.get(w, 0) + 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    print("words:", n_words, "distinct:", len(counts), "text_crc:", zlib.crc32(text.encode()))
    for w, c in top:
        print("  top", w, c)
    # Bigrams as tuple keys and string keys.
    bigrams = {}
    for a, b in zip(words, words[1:]):
        k = a + "_" + b
        bigrams[k] = bigrams.get(k, 0) + 1
    print("bigrams:", len(bigrams), digest(*sorted(bigrams.items())[:2000]))
    return counts


def phase_small_strings(n):
    # Millions of small string objects in dicts.
    d = {"k%d" % i: str((i * 7919) % 1000003) for i in range(n)}
    total = sum(len(v) for v in d.values())
    # Delete every third key, re-insert with new values, rebuild reversed.
    for i in range(0, n, 3):
        del d["k%d" % i]
    for i in range(0, n, 6):
        d["k%d" % i] = "v" + str(i)[::-1]
    inv = {}
    for k, v in d.items():
        inv.setdefault(v, []).append(k)
    keys = sorted(d)
    print("small_strings:", n, "len_sum:", total, "after_churn:", len(d), "inv:", len(inv))
    print("  sorted_keys:", keys[0], keys[len(keys) // 2], keys[-1],
          digest(*keys[:: max(1, len(keys) // 5000)]))
    up = [s.upper().replace("K", "key-") for s in keys[:200000]]
    print("  upper_crc:", zlib.crc32("|".join(up).encode()))
    return d


def phase_json(rng, vocab, n_records):
    records = []
    for i in range(n_records):
        records.append({
            "id": i,
            "name": vocab[i % len(vocab)] + "-" + vocab[(i * 31) % len(vocab)],
            "tags": [vocab[rng.randrange(len(vocab))] for _ in range(i % 5)],
            "score": (i * 2654435761) % 100000 / 100.0,
            "nested": {"a": str(i), "b": [i, i + 1, None, True]},
        })
    s = json.dumps(records, sort_keys=True)
    back = json.loads(s)
    assert back == records, "json round trip mismatch"
    s2 = json.dumps(back, sort_keys=True, indent=1)
    print("json:", n_records, "bytes:", len(s), len(s2), "crc:", zlib.crc32(s.encode()), zlib.crc32(s2.encode()))
    by_name = {}
    for r in back:
        by_name.setdefault(r["name"][:3], []).append(r["id"])
    print("  groups:", len(by_name), digest(*((k, len(v)) for k, v in sorted(by_name.items()))))


def phase_sort_and_format(rng, n):
    strs = ["%08x:%s" % (rng.getrandbits(32), "x" * (i % 13)) for i in range(n)]
    strs.sort()
    strs.sort(key=lambda s: (len(s), s[::-1]))
    joined = "\n".join(strs)
    parts = joined.split("\n")
    assert len(parts) == n
    fmt = [f"{i:06d}|{s[:8]}|{len(s):2d}" for i, s in enumerate(parts[: n // 2])]
    print("sort:", n, "first:", parts[0], "last:", parts[-1], "crc:", zlib.crc32(joined.encode()),
          zlib.crc32("".join(fmt).encode()))


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    rng = random.Random(20240611)
    vocab = make_vocab(rng, 20000)
    print("vocab:", len(vocab), digest(*vocab))
    phase_word_counts(rng, vocab, int(600000 * scale))
    phase_small_strings(int(1500000 * scale))
    phase_json(rng, vocab, int(150000 * scale))
    phase_sort_and_format(rng, int(400000 * scale))
    print("done")


if __name__ == "__main__":
    main()
