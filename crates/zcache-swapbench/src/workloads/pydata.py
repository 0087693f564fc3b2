# zcache swap-bench workload "python": real files in memory, checked under swap.
# argv: SIZE_MIB ROOT... Loads regular files under the roots (sorted walk) in 64 KiB
# chunks until SIZE_MIB MiB are held, keeps each chunk's SHA-256, then goes back over
# the chunks with a skewed access pattern (index = n * u^3: a hot head and a long cold
# tail) and finally over all of them in order, recomputing every checksum. Exit 1 and
# "ok": false on any mismatch: a page corrupted by swap shows up here.
import hashlib, json, os, random, sys, time

target = int(sys.argv[1]) << 20
roots = sys.argv[2:]
CHUNK = 65536
chunks, sums = [], []
held = files = 0
t0 = time.monotonic()
for root in roots:
    for d, dirs, names in os.walk(root):
        dirs.sort()
        names.sort()
        for name in names:
            if held >= target:
                break
            p = os.path.join(d, name)
            try:
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                with open(p, "rb") as f:
                    data = f.read(target - held)
            except OSError:
                continue
            files += 1
            for i in range(0, len(data), CHUNK):
                c = data[i : i + CHUNK]
                chunks.append(c)
                sums.append(hashlib.sha256(c).digest())
                held += len(c)
n = len(chunks)
rng = random.Random(14)
bad = checks = 0
for _ in range(4 * n):
    i = int(n * rng.random() ** 3)
    checks += 1
    if hashlib.sha256(chunks[i]).digest() != sums[i]:
        bad += 1
for i in range(n):
    checks += 1
    if hashlib.sha256(chunks[i]).digest() != sums[i]:
        bad += 1
print(json.dumps({"workload": "python", "files": files, "chunks": n, "bytes": held,
                  "checks": checks, "mismatches": bad, "ok": bad == 0 and n > 0,
                  "seconds": round(time.monotonic() - t0, 3)}))
sys.exit(0 if bad == 0 and n > 0 else 1)
