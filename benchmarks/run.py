"""imapd vs Dovecot, side by side, on the same Maildir corpus.

    python benchmarks/run.py --quick                  # smoke run, 10,000 messages
    python benchmarks/run.py --messages 100000        # the full comparison

Prints a Markdown table (scenario | imapd | Dovecot | ratio | target | result)
and writes benchmarks/out/results-<n>.json and .md.  See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import pstats
import shlex
import statistics
import sys
import time
from io import StringIO
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.corpus import crlf, ensure_corpus, extra_messages
from benchmarks.scenarios import (
    SCENARIOS,
    Context,
    Metric,
    Options,
    Sample,
    Scenario,
    prime,
    run_scenario,
)
from benchmarks.servers import (
    Dovecot,
    Identity,
    Imapd,
    Server,
    bench_identity,
    chown_tree,
    clone_maildir,
    make_snapshot,
    remove_tree,
    server_python,
    settle,
)

HERE = Path(__file__).resolve().parent
PHASES = ("start", "cold", "warm", "write", "idle")
MEMORY_TARGET_MB = 64.0
# The issue sets the targets that compare the two servers for this corpus size
# (APPEND's "10× faster", say, stands for Dovecot rescanning 100,000 names per
# message); at other sizes the table shows those ratios without a verdict.
TARGET_MESSAGES = 100_000
RELATIVE_KINDS = ("ratio", "throughput", "faster")


def log(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark imapd against Dovecot over stdio.")
    p.add_argument("--messages", type=int, default=10000, help="corpus size (default 10000)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 repetition (5 for start-up), 10 s idle-CPU check")
    p.add_argument("--reps", type=int, help="repetitions of each scenario (default 3; 1 with --quick)")
    p.add_argument("--slow-reps", type=int,
                   help="repetitions of SEARCH BODY and of fetching every body (default: --reps)")
    p.add_argument("--write-reps", type=int,
                   help="repetitions of STORE/EXPUNGE/APPEND (default: --reps, at most 2 from 50,000 messages up)")
    p.add_argument("--startup-reps", type=int, help="repetitions of start-up and of the warm SELECT (default 15; 5 with --quick)")
    p.add_argument("--idle-deliveries", type=int, default=20, help="IDLE deliveries measured (default 20)")
    p.add_argument("--idle-cpu-seconds", type=float,
                   help="idle-CPU observation period (default 60; 10 with --quick)")
    p.add_argument("--append-count", type=int, default=1000, help="messages APPENDed (default 1000)")
    p.add_argument("--seed", type=int, default=7, help="corpus seed (default 7)")
    p.add_argument("--servers", default="imapd,dovecot", help="comma-separated: imapd,dovecot")
    p.add_argument("--only", help="comma-separated scenario names (default: all): "
                   + ",".join(s.name for s in SCENARIOS))
    p.add_argument("--profile", action="store_true",
                   help="run imapd's sessions under cProfile (implies --servers imapd, 1 repetition); "
                        "writes out/profile-<scenario>-<n>.prof and .txt")
    p.add_argument("--out", type=Path, default=HERE / "out", help="output and cache directory")
    p.add_argument("--imapd-src", type=Path, default=HERE.parent, help="imapd checkout to benchmark")
    p.add_argument("--dovecot-imap", default="/usr/lib/dovecot/imap", help="Dovecot's imap binary")
    p.add_argument("--user", default="imapdbench", help="unprivileged user for both servers (when root)")
    p.add_argument("--pipe-size", type=int, default=1 << 20, help="pipe buffer size, 0 = system default")
    p.add_argument("--keep", action="store_true", help="keep the servers' Maildir copies afterwards")
    return p.parse_args(argv)


def options_from(a: argparse.Namespace) -> Options:
    reps = a.reps or (1 if a.quick else 3)
    if a.profile:
        reps = 1
    # a big corpus: the write scenarios take minutes each (Dovecot's APPEND two), two runs of them
    # will do; reading every body takes seconds, and its result swings with the machine: a median
    # of three, not the mean of two
    heavy = min(reps, 2) if a.messages >= 50000 else reps
    return Options(
        reps=reps,
        slow_reps=a.slow_reps or reps,
        write_reps=a.write_reps or heavy,
        startup_reps=a.startup_reps or (1 if a.profile else 5 if a.quick else 15),
        idle_deliveries=a.idle_deliveries,
        idle_cpu_seconds=a.idle_cpu_seconds or (10.0 if a.quick else 60.0),
        append_count=a.append_count,
    )


# ---------------------------------------------------------------- statistics and the table

def values(samples: list[Sample], key: str) -> list[float]:
    return [s.metrics[key] for s in samples if key in s.metrics and not s.error]


def summary(vals: list[float]) -> dict[str, float] | None:
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def display(v: float, unit: str, like: float | None = None) -> tuple[float, str]:
    """A value in a readable unit: seconds below 1 s as ms (or in the unit `like` gets)."""
    if unit in ("s", "ms"):
        seconds = v if unit == "s" else v / 1000
        ref = seconds if like is None else (like if unit == "s" else like / 1000)
        return (seconds, "s") if ref >= 1 else (seconds * 1000, "ms")
    return v, unit


def _digits(x: float) -> int:
    return 3 if x < 10 else 1 if x < 100 else 0


def fmt_value(v: float, unit: str) -> str:
    x, u = display(v, unit)
    if u in ("s", "ms", "MB/s", "MB", "msg/s"):
        return f"{x:.{_digits(x)}f} {u}"
    return f"{x:g} {u}"


def fmt_summary(sm: dict[str, float] | None, unit: str, errors: list[str]) -> str:
    if sm is None:
        return "error" if errors else "—"
    text = fmt_value(sm["median"], unit)
    if sm["n"] > 1 and sm["max"] > sm["min"]:
        lo, _ = display(sm["min"], unit, sm["median"])
        hi, _ = display(sm["max"], unit, sm["median"])
        text += f" ({lo:.{_digits(hi)}f}–{hi:.{_digits(hi)}f})"
    return text


def build_rows(results: dict[str, dict[str, list[Sample]]], servers: list[str], opts: Options,
               messages: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    baseline = None
    if "startup" in results and "imapd" in results["startup"]:
        baseline = summary(values(results["startup"]["imapd"], "baseline"))
    for sc in SCENARIOS:
        if sc.name not in results:
            continue
        for metric in sc.metrics:
            label = metric.label.format(append=opts.append_count, idle_cpu=opts.idle_cpu_seconds)
            row: dict[str, Any] = {"key": metric.key, "label": label, "unit": metric.unit, "scenario": sc.name}
            for name in servers:
                samples = results[sc.name].get(name, [])
                vals = values(samples, metric.key)
                row[name] = summary(vals)
                row[name + "_errors"] = [s.error for s in samples if s.error]
                row[name + "_notes"] = [s.notes.get("mismatch") for s in samples if s.notes.get("mismatch")]
            if all(row.get(n) is None for n in servers) and not any(row.get(n + "_errors") for n in servers):
                continue
            evaluate(row, metric, baseline, judged=messages == TARGET_MESSAGES)
            rows.append(row)
    rows.extend(memory_rows(results, servers))
    return rows


def evaluate(row: dict[str, Any], metric: Metric, baseline: dict[str, float] | None, judged: bool = True) -> None:
    """Fill in the row's ratio, target and verdict; a target comparing the two
    servers is judged only when `judged` (the corpus is the size it is set for)."""
    im, dc = row.get("imapd"), row.get("dovecot")
    row["ratio"] = im["median"] / dc["median"] if im and dc and dc["median"] else None
    t = metric.target
    row["target"] = t.describe(metric.unit) if t else ""
    row["pass"] = None
    row["verdict"] = ""
    if t is None or im is None:
        return
    if t.kind in RELATIVE_KINDS and not judged:
        row["target"] += f" (at {TARGET_MESSAGES:,})"
        return
    x = im["median"]
    if t.kind == "baseline" and baseline:
        r = x / baseline["median"]
        row["target"] = f"≤ {t.value:g}× python3 -S ({baseline['median'] * 1000:.1f} ms)"
        row["pass"], row["verdict"] = r <= t.value, f"{r:.2f}× baseline"
    elif t.kind == "max":
        row["pass"], row["verdict"] = x < t.value, ""
    elif dc is not None and row["ratio"] is not None:
        ratio = row["ratio"]
        if t.kind == "ratio":
            row["pass"] = ratio <= t.value
        elif t.kind == "throughput":
            row["pass"] = ratio >= t.value
        elif t.kind == "faster":
            row["pass"], row["verdict"] = 1 / ratio >= t.value, f"{1 / ratio:.2f}× faster"


def memory_rows(results: dict[str, dict[str, list[Sample]]], servers: list[str]) -> list[dict[str, Any]]:
    rows = []
    if "select_warm" in results:
        row: dict[str, Any] = {"key": "rss_select_warm", "label": "peak memory, SELECT warm session", "unit": "MB"}
        for name in servers:
            row[name] = summary([s.maxrss_kb / 1024 for s in results["select_warm"].get(name, []) if not s.error])
        _memory_verdict(row)
        rows.append(row)
    row = {"key": "rss_worst", "label": "peak memory, largest session", "unit": "MB"}
    for name in servers:
        worst, where = 0.0, ""
        for sc_name, by_server in results.items():
            for s in by_server.get(name, []):
                if not s.error and s.maxrss_kb / 1024 > worst:
                    worst, where = s.maxrss_kb / 1024, sc_name
        row[name] = {"median": worst, "min": worst, "max": worst, "n": 1} if worst else None
        row[name + "_where"] = where
    _memory_verdict(row)
    if row.get("imapd"):
        row["label"] += f" (imapd: {row['imapd_where']}; Dovecot: {row.get('dovecot_where') or '—'})"
    rows.append(row)
    return rows


def _memory_verdict(row: dict[str, Any]) -> None:
    im, dc = row.get("imapd"), row.get("dovecot")
    row["ratio"] = im["median"] / dc["median"] if im and dc else None
    row["target"] = f"≤ {MEMORY_TARGET_MB:g} MB"
    row["pass"] = im["median"] <= MEMORY_TARGET_MB if im else None
    row["verdict"] = ""


def render_table(rows: list[dict[str, Any]], servers: list[str]) -> str:
    labels = {"imapd": "imapd", "dovecot": "Dovecot"}
    head = ["scenario"] + [labels[s] for s in servers] + (["imapd/Dovecot"] if len(servers) == 2 else []) \
        + ["target", "result"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in rows:
        cells = [row["label"]]
        for s in servers:
            cell = fmt_summary(row.get(s), row["unit"], row.get(s + "_errors", []))
            if row.get(s + "_notes"):
                cell += " ⚠"
            cells.append(cell)
        if len(servers) == 2:
            cells.append(f"{row['ratio']:.2f}" if row.get("ratio") is not None else "—")
        cells.append(row.get("target", ""))
        result = {True: "pass", False: "**FAIL**", None: ""}[row.get("pass")]
        if row.get("verdict"):
            result = f"{result} ({row['verdict']})" if result else row["verdict"]
        cells.append(result)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_details(results: dict[str, dict[str, list[Sample]]], servers: list[str]) -> str:
    head = ["scenario"] + [f"{s} bytes received" for s in servers] + [f"{s} peak RSS" for s in servers]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for sc in SCENARIOS:
        if sc.name not in results:
            continue
        cells = [sc.name]
        for s in servers:
            ok = [x for x in results[sc.name].get(s, []) if not x.error]
            cells.append(f"{statistics.median([x.received for x in ok]):,.0f}" if ok else "—")
        for s in servers:
            ok = [x for x in results[sc.name].get(s, []) if not x.error]
            cells.append(f"{max(x.maxrss_kb for x in ok) / 1024:.1f} MB" if ok else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_problems(results: dict[str, dict[str, list[Sample]]]) -> str:
    out = []
    for sc_name, by_server in results.items():
        for name, samples in by_server.items():
            for k, s in enumerate(samples):
                if s.error:
                    out.append(f"- {sc_name} / {name} rep {k + 1}: {s.error}")
                if s.notes.get("mismatch"):
                    out.append(f"- {sc_name} / {name} rep {k + 1}: {s.notes['mismatch']}")
    return "\n".join(dict.fromkeys(out))


# ---------------------------------------------------------------- the run

def machine(python: str, python_version: str) -> dict[str, Any]:
    """The machine, and the interpreter imapd ran on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        mem_gb = int(mem.split()[1]) / 1024 / 1024
    except (OSError, StopIteration):
        mem_gb = 0.0
    return {"cpu": model, "cores": os.cpu_count(), "memory_gb": round(mem_gb, 1), "kernel": platform.release(),
            "python": python_version, "python_path": python}


def make_servers(a: argparse.Namespace, run_dir: Path, ident: Identity, snapshot: Path | None) -> list[Server]:
    wanted = ["imapd"] if a.profile else [s.strip() for s in a.servers.split(",") if s.strip()]
    servers: list[Server] = []
    for name in wanted:
        home = run_dir / name
        home.mkdir(parents=True, exist_ok=True)
        chown_tree(home, ident)
        logfile = run_dir / f"{name}.stderr.log"
        if name == "imapd":
            assert snapshot is not None
            servers.append(Imapd(home, ident, a.pipe_size, logfile, snapshot))
        elif name == "dovecot":
            if not Dovecot.available(a.dovecot_imap):
                log(f"Dovecot's imap ({a.dovecot_imap}) is not installed: imapd alone "
                    "(apt-get install dovecot-imapd for the comparison)")
                continue
            servers.append(Dovecot(home, ident, a.pipe_size, logfile, a.dovecot_imap))
        else:
            raise SystemExit(f"unknown server {name!r}")
    return servers


def main(argv: list[str] | None = None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    opts = options_from(a)
    n = a.messages
    out: Path = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    ident = bench_identity(a.user)
    if os.geteuid() == 0:
        os.chmod(out, 0o755)

    log(f"corpus: {n} messages, seed {a.seed} ...")
    t = time.monotonic()
    manifest = ensure_corpus(out, n, a.seed, ident.uid if ident.switch else -1, ident.gid if ident.switch else -1)
    log(f"corpus: {manifest.total_bytes / 1e6:.0f} MB, {manifest.from_rare} from the rare sender, {manifest.body_rare} with the rare word, "
        f"ready in {time.monotonic() - t:.1f} s (generated in {manifest.generate_seconds} s)")

    run_dir = out / f"run-{n}"
    run_dir.mkdir(exist_ok=True)
    os.chmod(run_dir, 0o755)
    python, python_version = server_python(ident)
    if python != os.path.realpath(sys.executable):
        log(f"imapd runs on {python} (Python {python_version}): user {ident.name} cannot run {sys.executable}")
    snapshot = make_snapshot(a.imapd_src.resolve(), run_dir / "imapd-snapshot", python)
    servers = make_servers(a, run_dir, ident, snapshot)
    names = [s.name for s in servers]
    for s in servers:
        s.log.write_bytes(b"")

    log("copying the corpus for each server ...")
    primed = {s.name: s.home / "Maildir" for s in servers}
    work = {s.name: s.home / "work" for s in servers}
    for s in servers:
        clone_maildir(Path(manifest.maildir), primed[s.name], ident)
    settle()

    extra = extra_messages(a.seed, n, n, opts.append_count + opts.idle_deliveries)
    ctx = Context(servers, ident, manifest, opts, primed, work,
                  [str(snapshot / "bin" / "python3"), "-S", "-c", "pass"],
                  append_messages=[crlf(m) for m in extra[:opts.append_count]],
                  deliveries=extra[opts.append_count:],
                  profile_dir=run_dir if a.profile else None)

    only = set(a.only.split(",")) if a.only else None
    chosen: list[Scenario] = [s for s in SCENARIOS if only is None or s.name in only]
    if a.profile:
        chosen = [s for s in chosen if s.name != "startup"]
    results: dict[str, dict[str, list[Sample]]] = {}
    primed_done = False
    started = time.monotonic()
    for phase in PHASES:
        for sc in (s for s in chosen if s.phase == phase):
            if phase in ("warm", "write", "idle") and not primed_done:
                log("priming each server's index and cache (two sessions) ...")
                for server in servers:
                    for _ in range(2):
                        prime(ctx, server, primed[server.name])
                primed_done = True
            title = sc.description or sc.metrics[0].label.format(append=opts.append_count,
                                                                 idle_cpu=opts.idle_cpu_seconds)
            log(f"{sc.name}: {title}")
            t = time.monotonic()
            results[sc.name] = run_scenario(ctx, sc, log)
            log(f"  ({time.monotonic() - t:.1f} s)")
    total = time.monotonic() - started

    rows = build_rows(results, names, opts, n)
    table = render_table(rows, names)
    details = render_details(results, names)
    problems = render_problems(results)
    meta: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/run.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": machine(python, python_version),
        "versions": {s.name: s.version() for s in servers},
        "corpus": manifest.__dict__,
        "options": opts.__dict__,
        "user": ident.name,
        "seconds": round(total, 1),
    }
    header = (f"{n:,} messages ({manifest.total_bytes / 1e6:,.0f} MB), {meta['date']}, "
              f"{meta['machine']['cores']} cores ({meta['machine']['cpu']}), Python {meta['machine']['python']} ({meta['machine']['python_path']}); "
              + "; ".join(meta["versions"].values()))
    if n != TARGET_MESSAGES:
        table += (f"\n\nThe targets comparing imapd with Dovecot are set for {TARGET_MESSAGES:,} messages: "
                  f"at {n:,} the table gives the ratios without a verdict.")
    text = f"{header}\n\n{table}\n\nBytes received and peak memory (largest session of each scenario):\n\n{details}\n"
    if problems:
        text += f"\nProblems:\n\n{problems}\n"
    print(text)

    suffix = f"{n}-profile" if a.profile else f"{n}"
    (out / f"results-{suffix}.md").write_text(text)
    payload = {"meta": meta, "rows": rows,
               "samples": {sc: {srv: [s.__dict__ for s in lst] for srv, lst in by.items()}
                           for sc, by in results.items()}}
    (out / f"results-{suffix}.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    log(f"wrote {out / f'results-{suffix}.json'} and .md; run took {total / 60:.1f} min")

    if a.profile:
        report_profiles(ctx.profiles, out, n, snapshot / "lib")
    if not a.keep:
        for s in servers:
            remove_tree(primed[s.name])
            remove_tree(work[s.name])
    return 0


def report_profiles(paths: list[Path], out: Path, n: int, source: Path) -> None:
    """For each imapd session profiled: the top functions by cumulative and by own time."""
    for path in paths:
        if not path.exists():
            log(f"no profile written: {path}")
            continue
        scenario = path.name.split("-", 1)[1].rsplit("-", 1)[0]
        target = out / f"profile-{scenario}-{n}"
        if target.with_suffix(".prof").exists():
            target = out / f"profile-{scenario}-{n}-{path.stem.rsplit('-', 1)[1]}"
        target.with_suffix(".prof").write_bytes(path.read_bytes())
        buf = StringIO()
        stats = pstats.Stats(str(path), stream=buf)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(25)
        stdlib = os.path.dirname(os.__file__)
        text = buf.getvalue().replace(f"{source}/", "").replace(f"{stdlib}/", "")
        target.with_suffix(".txt").write_text(text)
        log(f"profile of {scenario}: {target.with_suffix('.txt')}")


if __name__ == "__main__":
    sys.exit(main())
