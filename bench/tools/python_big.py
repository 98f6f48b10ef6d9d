"""Big strings, bytes and lists in python3, pymalloc on (the default).

Run by scripts/bench-compare (workload `python-big`) without PYTHONMALLOC, so
objects of up to 512 bytes stay in CPython's own pymalloc arenas and what
reaches the allocator under test is mostly large: buffers of up to 64 MiB
that CPython grows with realloc, copies and frees. Each round:
- grows a bytearray by appends of 1..16 KiB to 64 MiB (realloc, over-allocated
  by an eighth each time);
- builds a str with ''.join of 500,000 small pieces (one big malloc), and
  encodes it (another);
- grows a str by `s += chunk` (chunks of 256 B..8 KiB) to 16 MiB (CPython
  resizes it in place, a realloc per append);
- appends to a list until it holds a million ints (the pointer array grows
  by realloc);
- slices and copies bytes: bytes(bytearray) of 64 MiB, 8 slices of 1..4 MiB,
  a join of them, a translate and a concatenation of 16 MiB.
Checks lengths and contents and exits 1 if anything is off. Deterministic
(a seeded PRNG). Prints `seconds: X`, the time of the rounds.

Usage: python3 python_big.py [SCALE] [ROUNDS]   (defaults 1.0 and 2)
"""

import random
import sys
import time

MIB = 1 << 20


def fail(what):
    print(f"python_big: {what}", file=sys.stderr)
    sys.exit(1)


def random_order(rng, pieces, target):
    """Indices of random pieces whose lengths add up to target or just over."""
    order = []
    total = 0
    while total < target:
        i = rng.randrange(len(pieces))
        order.append(i)
        total += len(pieces[i])
    return order


def check_pieces(data, order, pieces, label):
    """data is the concatenation of pieces[i] for i in order: spot checks."""
    at = 0
    for n, i in enumerate(order):
        p = pieces[i]
        if n % 97 == 0 and data[at:at + len(p)] != p:
            fail(f"{label}: piece {n} at {at} disturbed")
        at += len(p)
    if at != len(data):
        fail(f"{label}: length {len(data)}, expected {at}")


def one_round(r, scale):
    rng = random.Random(1000 + r)
    pieces = [bytes((k + j) & 0xFF for j in range(1024 * (1 + k % 16))) for k in range(64)]

    # A bytearray grown by appends to 64 MiB.
    order = random_order(rng, pieces, int(64 * MIB * scale))
    ba = bytearray()
    for i in order:
        ba += pieces[i]
    check_pieces(ba, order, pieces, "bytearray")

    # ''.join of many pieces, then encoded.
    words = [f"{k:06x}-{'abcdefgh'[k % 8] * (k % 23)}|" for k in range(4096)]
    picks = rng.choices(words, k=int(500_000 * scale))
    text = "".join(picks)
    if len(text) != sum(map(len, picks)) or not text.startswith(picks[0]):
        fail("join: disturbed")
    encoded = text.encode()
    if len(encoded) != len(text) or not encoded.endswith(picks[-1].encode()):
        fail("encode: disturbed")
    del text, encoded, picks

    # A str grown by += in a for loop (CPython 3.11 resizes it in place, a
    # realloc per append; `while len(s) < n: s += c` does not stay in place
    # and is quadratic in CPython itself, under any allocator).
    chunks = ["".join(chr(97 + (k + j) % 26) for j in range(256 * (1 + k % 32))) for k in range(32)]
    order = random_order(rng, chunks, int(16 * MIB * scale))
    s = ""
    for i in order:
        s += chunks[i]
    check_pieces(s, order, chunks, "str +=")
    del s

    # list.append to a million ints.
    n = int(1_000_000 * scale)
    lst = []
    append = lst.append
    for k in range(n):
        append(k * 7)
    if len(lst) != n or lst[n // 2] != (n // 2) * 7 or lst[-1] != (n - 1) * 7:
        fail("list: disturbed")
    del lst, append

    # bytes slicing and copies.
    b = bytes(ba)
    del ba
    slices = []
    for _ in range(8):
        size = rng.randint(len(b) // 64, len(b) // 16)  # 1..4 MiB at scale 1
        start = rng.randrange(len(b) - size)
        part = b[start:start + size]
        if part[0] != b[start] or part[-1] != b[start + size - 1] or len(part) != size:
            fail("slice: disturbed")
        slices.append((start, part))
    joined = b"".join(part for _, part in slices)
    at = 0
    for start, part in slices:
        if joined[at] != b[start] or joined[at + len(part) - 1] != b[start + len(part) - 1]:
            fail("bytes join: disturbed")
        at += len(part)
    table = bytes((k + 1) & 0xFF for k in range(256))
    head = b[:len(b) // 4]
    shifted = head.translate(table)
    if shifted[1234] != (b[1234] + 1) & 0xFF or shifted[-1] != (head[-1] + 1) & 0xFF:
        fail("translate: disturbed")
    doubled = head + shifted
    if len(doubled) != 2 * len(head) or doubled[len(head)] != shifted[0]:
        fail("concatenation: disturbed")


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    t0 = time.perf_counter()
    for r in range(rounds):
        one_round(r, scale)
    print(f"seconds: {time.perf_counter() - t0:.6f}")


if __name__ == "__main__":
    main()
