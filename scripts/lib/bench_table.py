#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Prints the benchmark table from JSON lines (scripts/bench).

Every coronet benchmark binary prints one JSON object per line:
    {"bench": "runtime", "case": "switch", "impl": "coronet", "value": 4.2, "unit": "ns"}
Rows with impl "coronet" are ours; any other impl of the same bench and case
is a reference measured in the same run. The ratio column says how coronet
compares with each reference, always as "> 1 means coronet is better": for
time and memory units (lower is better) it is reference / coronet, for rates
(units ending in "/s", higher is better) coronet / reference.

TARGETS below are the goals from the issues; later benchmarks (echo, ws,
kinesis) add theirs to the same list.
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


TARGETS = [
    ("switch: coronet < 10 ns", below("runtime", "switch", "coronet", 10, "ns")),
    ("switch: >= 10x faster than ucontext", faster_by("runtime", "switch", "ucontext", 10)),
    ("switch: within 1.2x of Boost.Context", within("runtime", "switch", "boost_context", 1.2)),
    ("parked_rss: <= 8 KiB per parked coroutine",
     at_most("runtime", "parked_rss", "coronet", 8192, "bytes")),
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


def main(argv):
    rows = load(argv[1:])
    if not rows:
        print("no benchmark results")
        return 1
    results = {(r["bench"], r["case"], r["impl"]): r["value"] for r in rows}

    header = ("bench", "case", "impl", "value", "unit", "coronet vs ref")
    table = []
    for r in rows:
        ratio = ""
        if r["impl"] != "coronet":
            ours = results.get((r["bench"], r["case"], "coronet"))
            q = coronet_ratio(ours, r["value"], r["unit"])
            if q is not None:
                ratio = f"{q:.2f}x"
        table.append((r["bench"], r["case"], r["impl"], fmt_value(r["value"]), r["unit"], ratio))

    widths = [max(len(str(row[i])) for row in table + [header]) for i in range(len(header))]
    right = {3, 5}

    def line(cells):
        out = []
        for i, c in enumerate(cells):
            out.append(str(c).rjust(widths[i]) if i in right else str(c).ljust(widths[i]))
        return "  ".join(out).rstrip()

    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in table:
        print(line(row))
    print("(coronet vs ref > 1: coronet is better by that factor)")

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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
