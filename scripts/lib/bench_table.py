#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Prints the benchmark table from JSON lines (scripts/bench).

Every coronet benchmark binary prints one JSON object per line:
    {"bench": "runtime", "case": "switch", "impl": "coronet", "value": 4.2, "unit": "ns"}
Rows with impl "coronet" are ours; any other impl of the same bench and case
is a reference measured in the same run. Each bench gets one table, a row per
case and a column per impl; after each reference a "vs REF" column says how
coronet compares with it, always as "> 1 means coronet is better": for time
and memory units (lower is better) it is REF / coronet, for rates (units
ending in "/s", higher is better) coronet / REF.

    bench_table.py [--plot BENCH:REF:PNG ...] RESULTS.jsonl ...

--plot draws BENCH's rates normalized to REF as clustered bars into PNG with
gnuplot (skipped with a note when gnuplot is not installed).

The kinesis bench has its own table (print_kinesis) and plot (plot_kinesis,
REF "best"): its cases are <emulator>_<variant>, each variant a different
implementation (coronet's confirmed, fire_and_forget and noagg, boto3's
put_records, node_kpl's agg_put_record), so each row is compared with the
best reference measured on the same emulator; a value of 0 is a run that
lost records, failed or timed out, shown as FAILED.

TARGETS below are the goals from the issues; later benchmarks (kinesis) add
theirs to the same list.
"""
import json
import sys

# Units where a larger value is better; everything else is lower-is-better.
def higher_is_better(unit):
    return unit.endswith("/s")


def coronet_ratio(ours, ref, unit):
    if ours is None or ref is None or ours == 0 or ref == 0:
        return None
    return ours / ref if higher_is_better(unit) else ref / ours


# ---- targets: (description, function(results) -> (shown value, passed)) ----
# results maps (bench, case, impl) -> value. A target whose inputs are
# missing is reported as "n/a", never as passed.

def value(results, bench, case, impl):
    return results.get((bench, case, impl))


def below(bench, case, impl, limit, unit):
    def check(results):
        v = value(results, bench, case, impl)
        if v is None:
            return None, None
        return f"{v:g} {unit}", v < limit
    return check


def at_most(bench, case, impl, limit, unit):
    def check(results):
        v = value(results, bench, case, impl)
        if v is None:
            return None, None
        return f"{v:g} {unit}", v <= limit
    return check


def faster_by(bench, case, ref, factor):
    """coronet at least `factor` times faster than ref."""
    def check(results):
        ours = value(results, bench, case, "coronet")
        theirs = value(results, bench, case, ref)
        if ours is None or theirs is None or ours <= 0:
            return None, None
        r = theirs / ours
        return f"{r:.1f}x faster", r >= factor
    return check


def within(bench, case, ref, factor):
    """coronet no slower than `factor` times ref."""
    def check(results):
        ours = value(results, bench, case, "coronet")
        theirs = value(results, bench, case, ref)
        if ours is None or theirs is None or theirs <= 0:
            return None, None
        r = ours / theirs
        return f"{r:.2f}x of {ref}", r <= factor
    return check


def rate_at_least(bench, case, ref, factor):
    """coronet's rate (higher is better) at least `factor` times ref's."""
    def check(results):
        ours = value(results, bench, case, "coronet")
        theirs = value(results, bench, case, ref)
        if ours is None or theirs is None or theirs <= 0:
            return None, None
        r = ours / theirs
        return f"{r:.2f}x {ref}", r >= factor
    return check


TARGETS = [
    ("switch: coronet < 10 ns", below("runtime", "switch", "coronet", 10, "ns")),
    ("switch: >= 10x faster than ucontext", faster_by("runtime", "switch", "ucontext", 10)),
    ("switch: within 1.2x of Boost.Context", within("runtime", "switch", "boost_context", 1.2)),
    ("parked_rss: <= 8 KiB per parked coroutine",
     at_most("runtime", "parked_rss", "coronet", 8192, "bytes")),
]

# TCP echo (issue 4): ping-pong within 5 % of raw libuv, stream at least as
# fast as raw libuv and Boost.Asio, at every size; idle connections < 16 KiB.
for _size in ("64", "1k", "16k", "64k"):
    for _kind in ("pingpong", "pingpong50"):
        TARGETS.append((f"{_kind}_{_size}: >= 0.95x libuv rt/s",
                        rate_at_least("tcp_echo", f"{_kind}_{_size}", "libuv", 0.95)))
    for _ref in ("libuv", "asio"):
        TARGETS.append((f"stream_{_size}: >= 1.0x {_ref} MB/s",
                        rate_at_least("tcp_echo", f"stream_{_size}", _ref, 1.0)))
# WebSocket echo (issue 5): faster than Bun (uWebSockets inside) at every
# size, ping-pong on 1 and 50 connections and streaming.
for _kind in ("pingpong", "pingpong50", "stream"):
    for _size in ("64", "1k", "16k", "64k"):
        _unit = "MB/s" if _kind == "stream" else "msg/s"
        TARGETS.append((f"ws {_kind}_{_size}: >= 1.0x bun {_unit}",
                        rate_at_least("ws_echo", f"{_kind}_{_size}", "bun", 1.0)))
# Kinesis (issue 7): 20,000 x 200 B on one shard with every outcome
# confirmed, faster than the best reference on the same emulator (fire and
# forget); the producer under 1 us of CPU per record, 1M records/s on one
# core against the fast fake endpoint.
KINESIS_EMULATORS = ("kinesalite", "kinesis_mock")


def kinesis_best_ref(results, emu, suffix="", unit="records/s"):
    """(impl, value) of the best reference on emulator emu for the rows
    <emu>_<variant><suffix>: the highest rate, or the lowest CPU; refs that
    failed (value 0) do not count. None if there is none."""
    best = None
    for (bench, case, impl), v in results.items():
        if bench != "kinesis" or impl == "coronet" or v <= 0:
            continue
        if not case.startswith(emu + "_") or not case.endswith(suffix):
            continue
        if suffix == "" and case.endswith("_cpu"):
            continue
        better = (best is None or (v > best[1] if higher_is_better(unit) else v < best[1]))
        if better:
            best = (impl, v)
    return best


def kinesis_beats_best(emu):
    def check(results):
        ours = value(results, "kinesis", f"{emu}_confirmed", "coronet")
        best = kinesis_best_ref(results, emu)
        if ours is None or best is None:
            return None, None
        if ours <= 0:
            return "FAILED", False
        r = ours / best[1]
        return f"{r:.2f}x {best[0]}", r > 1.0
    return check


def at_least(bench, case, impl, limit, unit):
    def check(results):
        v = value(results, bench, case, impl)
        if v is None:
            return None, None
        return f"{v:,.0f} {unit}", v >= limit
    return check


for _emu in KINESIS_EMULATORS:
    TARGETS.append((f"kinesis {_emu}: confirmed > best ref",
                    kinesis_beats_best(_emu)))
TARGETS += [
    ("kinesis producer: < 1 us CPU per record",
     below("kinesis", "ceiling_agg_cpu", "coronet", 1.0, "us/record")),
    ("kinesis producer: >= 1M records/s",
     at_least("kinesis", "ceiling_agg", "coronet", 1e6, "records/s")),
]
TARGETS += [
    ("idle_rss: < 16 KiB per idle connection",
     below("tcp_echo", "idle_rss", "coronet", 16384, "bytes")),
    ("idle_rss_tls: < 16 KiB per idle TLS conn",
     below("tcp_echo", "idle_rss_tls", "coronet", 16384, "bytes")),
]


def load(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                    row["value"] = float(row["value"])
                    for key in ("bench", "case", "impl", "unit"):
                        row[key] = str(row[key])
                except (ValueError, KeyError, TypeError) as e:
                    print(f"{path}:{n}: not a benchmark line ({e}): {line}", file=sys.stderr)
                    continue
                rows.append(row)
    return rows


def fmt_value(v):
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}"


def ordered(items):
    seen = []
    for x in items:
        if x not in seen:
            seen.append(x)
    return seen


def print_bench(bench, rows, results):
    """One table per bench: a row per case, a column per impl (coronet
    first), and after each reference how coronet compares with it."""
    rows = [r for r in rows if r["bench"] == bench]
    cases = ordered(r["case"] for r in rows)
    impls = ordered(r["impl"] for r in rows)
    refs = [i for i in impls if i != "coronet"]
    units = {r["case"]: r["unit"] for r in rows}
    header = ["case", "unit"] + (["coronet"] if "coronet" in impls else [])
    for ref in refs:
        header += [ref, "vs " + ref]
    table = []
    for case in cases:
        unit = units[case]
        ours = results.get((bench, case, "coronet"))
        cells = [case, unit]
        if "coronet" in impls:
            cells.append(fmt_value(ours) if ours is not None else "-")
        for ref in refs:
            theirs = results.get((bench, case, ref))
            q = coronet_ratio(ours, theirs, unit)
            cells += [fmt_value(theirs) if theirs is not None else "-",
                      f"{q:.2f}x" if q is not None else ""]
        table.append(cells)
    widths = [max(len(str(row[i])) for row in table + [header]) for i in range(len(header))]

    def line(cells):
        out = [str(c).ljust(widths[i]) if i < 2 else str(c).rjust(widths[i])
               for i, c in enumerate(cells)]
        return "  ".join(out).rstrip()

    print(f"[{bench}]")
    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in table:
        print(line(row))


def kinesis_emulator(case):
    """The emulator of a kinesis matrix case, or None."""
    for emu in KINESIS_EMULATORS:
        if case.startswith(emu + "_"):
            return emu
    return None


def print_kinesis(rows, results):
    """The kinesis table: a row per case and implementation; a matrix row
    (records/s or us/record on an emulator) is compared with the best
    reference on the same emulator, "> 1: coronet is better"."""
    rows = [r for r in rows if r["bench"] == "kinesis"]
    header = ["case", "impl", "unit", "value", "vs best ref"]
    table = []
    for r in rows:
        case, impl, unit, v = r["case"], r["impl"], r["unit"], r["value"]
        shown = fmt_value(v)
        vs = ""
        emu = kinesis_emulator(case)
        matrix = emu is not None and unit in ("records/s", "us/record")
        if matrix and v <= 0:
            shown = "FAILED"
        elif matrix:
            best = kinesis_best_ref(results, emu, "_cpu" if case.endswith("_cpu") else "", unit)
            q = coronet_ratio(v, best[1], unit) if best else None
            if q is not None and impl == "coronet":
                vs = f"{q:.2f}x {best[0]}"
            elif q is not None and (impl, v) != best:
                vs = f"({q:.2f}x)"  # a reference against the best one
        table.append([case, impl, unit, shown, vs])
    widths = [max(len(str(row[i])) for row in table + [header]) for i in range(len(header))]

    def line(cells):
        out = [str(c).ljust(widths[i]) if i < 3 else str(c).rjust(widths[i])
               for i, c in enumerate(cells)]
        return "  ".join(out).rstrip()

    print("[kinesis]")
    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in table:
        print(line(row))
    print("(matrix rows against the best reference on the same emulator; FAILED: records lost,"
          " a failure or the time limit)")


def plot_kinesis(rows, results, png):
    """Bars per emulator, one per implementation and variant, in records/s
    normalized to the best reference on that emulator."""
    import os
    import shutil
    import subprocess
    import tempfile
    if not shutil.which("gnuplot"):
        return f"plot: gnuplot not installed, {png} not drawn"
    rows = [r for r in rows if r["bench"] == "kinesis" and r["unit"] == "records/s"
            and kinesis_emulator(r["case"]) and not r["case"].endswith("_cpu")]
    emus = [e for e in KINESIS_EMULATORS if kinesis_best_ref(results, e)]
    series = ordered(f"{r['impl']}:{r['case'][len(kinesis_emulator(r['case'])) + 1:]}"
                     for r in rows)
    if not emus or not series:
        return f"plot: no kinesis rates with a reference, {png} not drawn"
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as f:
        f.write("emulator " + " ".join(series) + "\n")
        for emu in emus:
            base = kinesis_best_ref(results, emu)[1]
            vals = []
            for sname in series:
                impl, variant = sname.split(":", 1)
                v = results.get(("kinesis", f"{emu}_{variant}", impl))
                vals.append("-" if v is None else f"{v / base:.4f}")
            f.write(emu + " " + " ".join(vals) + "\n")
        data = f.name
    cols = ", ".join(
        f"'{data}' using {k + 2}:xtic(1) title columnheader({k + 2})" for k in range(len(series)))
    script = f"""
set terminal pngcairo size 1000,600 noenhanced
set output '{png}'
set title 'kinesis: 20,000 x 200 B, 1 shard, records/s relative to the best reference (higher is better)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set datafile missing '-'
set key top right
set grid ytics
set yrange [0:*]
set ylabel 'x best reference'
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2
plot {cols}
"""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True, capture_output=True)
    except subprocess.CalledProcessError as e:
        return f"plot: gnuplot failed: {e.stderr.strip()}"
    finally:
        os.unlink(data)
    return f"plot: {png}"


def plot(rows, results, bench, ref, png):
    """Bars per rate case (units ending in /s) per impl, normalized to ref,
    drawn with gnuplot when it is installed. Returns a message."""
    import shutil
    import subprocess
    import tempfile
    if not shutil.which("gnuplot"):
        return f"plot: gnuplot not installed, {png} not drawn"
    rows = [r for r in rows if r["bench"] == bench and higher_is_better(r["unit"])]
    cases = [c for c in ordered(r["case"] for r in rows) if results.get((bench, c, ref))]
    impls = ordered(["coronet"] + [r["impl"] for r in rows])
    impls = [i for i in impls if any((bench, c, i) in results for c in cases)]
    if not cases or ref not in impls:
        return f"plot: no {bench} rates measured against {ref}, {png} not drawn"
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as f:
        f.write("case " + " ".join(impls) + "\n")
        for c in cases:
            base = results[(bench, c, ref)]
            vals = [results.get((bench, c, i)) for i in impls]
            f.write(c + " " + " ".join("-" if v is None else f"{v / base:.4f}" for v in vals)
                    + "\n")
        data = f.name
    cols = ", ".join(
        f"'{data}' using {k + 2}:xtic(1) title columnheader({k + 2})" for k in range(len(impls)))
    script = f"""
set terminal pngcairo size 1400,600 noenhanced
set output '{png}'
set title '{bench}: throughput relative to {ref} (higher is better, median of rounds)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set datafile missing '-'
set key top right
set grid ytics
set yrange [0:*]
set ylabel 'x {ref}'
set xtics rotate by -45
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2
plot {cols}
"""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True,
                       capture_output=True)
    except subprocess.CalledProcessError as e:
        return f"plot: gnuplot failed: {e.stderr.strip()}"
    finally:
        import os
        os.unlink(data)
    return f"plot: {png}"


def main(argv):
    plots = []
    paths = []
    args = argv[1:]
    while args:
        a = args.pop(0)
        if a == "--plot" and args:
            # --plot BENCH:REF:PNG
            bench, ref, png = args.pop(0).split(":", 2)
            plots.append((bench, ref, png))
        else:
            paths.append(a)
    rows = load(paths)
    if not rows:
        print("no benchmark results")
        return 1
    results = {(r["bench"], r["case"], r["impl"]): r["value"] for r in rows}

    for bench in ordered(r["bench"] for r in rows):
        if bench == "kinesis":
            print_kinesis(rows, results)
        else:
            print_bench(bench, rows, results)
        print()
    print("(vs REF > 1: coronet is better by that factor; rates coronet/REF,"
          " times and sizes REF/coronet)")

    print()
    print("targets")
    met = missed = 0
    for desc, check in TARGETS:
        shown, ok = check(results)
        if ok is None:
            verdict, shown = "n/a", "not measured"
        elif ok:
            verdict = "PASS"
            met += 1
        else:
            verdict = "MISS"
            missed += 1
        print(f"  {desc:<44} {shown:>22}  {verdict}")
    print(f"  {met} met, {missed} missed")
    for bench, ref, png in plots:
        if bench == "kinesis":
            print(plot_kinesis(rows, results, png))
        else:
            print(plot(rows, results, bench, ref, png))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
