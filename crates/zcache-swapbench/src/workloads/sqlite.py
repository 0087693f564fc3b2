# zcache swap-bench workload "sqlite": an in-memory SQLite database (CPython's sqlite3
# module, i.e. the SQLite library) built from real text, queried, and every answer
# checked against counts computed independently while the text was read.
# argv: SIZE_MIB ROOT... Reads regular files under the roots (sorted walk) until
# SIZE_MIB MiB of text are read, one row per line (file id, line number, text), builds
# an index on the text, then runs four queries twice. Exit 1 and "ok": false on any
# wrong answer.
import json, os, sqlite3, sys, time

target = int(sys.argv[1]) << 20
roots = sys.argv[2:]
db = sqlite3.connect(":memory:")
db.execute("CREATE TABLE lines(file INTEGER, n INTEGER, text TEXT)")
lines = chars = with_struct = defines = 0
per_file = {}
read = fid = 0
t0 = time.monotonic()
for root in roots:
    for d, dirs, names in os.walk(root):
        dirs.sort()
        names.sort()
        for name in names:
            if read >= target:
                break
            p = os.path.join(d, name)
            try:
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                with open(p, "rb") as f:
                    raw = f.read(target - read)
            except OSError:
                continue
            read += len(raw)
            text = raw.decode("utf-8", errors="replace").replace("\x00", " ")
            rows = [(fid, k, line) for k, line in enumerate(text.split("\n"))]
            db.executemany("INSERT INTO lines VALUES (?, ?, ?)", rows)
            per_file[fid] = len(rows)
            lines += len(rows)
            for _, _, line in rows:
                chars += len(line)
                if "struct" in line:
                    with_struct += 1
                if line.startswith("#define"):
                    defines += 1
            fid += 1
db.commit()
db.execute("CREATE INDEX by_text ON lines(text)")
wrong = []
for rnd in range(2):
    got = db.execute("SELECT count(*), coalesce(sum(length(text)), 0) FROM lines").fetchone()
    if got != (lines, chars):
        wrong.append(["count/sum", rnd, list(got), [lines, chars]])
    got = db.execute("SELECT count(*) FROM lines WHERE instr(text, 'struct') > 0").fetchone()[0]
    if got != with_struct:
        wrong.append(["struct", rnd, got, with_struct])
    got = db.execute("SELECT count(*) FROM lines WHERE text >= '#define' AND text < '#definf'").fetchone()[0]
    if got != defines:
        wrong.append(["#define (index)", rnd, got, defines])
    got = dict(db.execute("SELECT file, count(*) FROM lines GROUP BY file").fetchall())
    if got != per_file:
        wrong.append(["per-file", rnd, len(got), len(per_file)])
ok = not wrong and lines > 0
print(json.dumps({"workload": "sqlite", "files": fid, "bytes_read": read, "rows": lines,
                  "struct_lines": with_struct, "define_lines": defines, "wrong": wrong,
                  "ok": ok, "seconds": round(time.monotonic() - t0, 3)}))
sys.exit(0 if ok else 1)
