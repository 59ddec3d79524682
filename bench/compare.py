"""Append a same-run comparison section to a bench report and its goals to the goals file.

Usage: compare.py RUN_DIR ROUNDS KIND

KIND is one of:
  pool  the routing cost: a pool of 10 deployments vs one deployment (goal: within 10%);
  gov   the governance cost with the same prompt on every request (its token count comes from
        the tokenizer's memo after the first): a key with rpm, tpm and a budget, cost tracking
        on, spend in SQLite and in PostgreSQL, vs plain pass-through (goal: within 25%);
  govf  the same with fresh prompts (a new text on every request, every prompt tokenized);
  cache a memory-backend cache hit (the same request every time, so every request after the
        first is a hit) vs plain pass-through (goal: below 1.00x).

Reads RUN_DIR/PATH-PREFIX-sat.rK.json (K = 1..ROUNDS) and RUN_DIR/PATH-PREFIX-rate.json, PATH
being `gateway` and the compared gateway, PREFIX that comparison's (each compared gateway takes
turns with the plain one in runs of its own: pool, gov, gov-pg, govf, govf-pg). The
saturation ratio is the median of the rounds' ratios, the CPU figures are those of the median
round (the lower middle one for an even count), and every round's ratio is listed ("–": no
2xx response or no CPU time in that round, left out of the median). A path that was not measured (its file is missing)
shows as "–" and its goals as n/a. Appends "RESULT<TAB>GOAL<TAB>MEASURED" lines to
RUN_DIR/goals.tsv.
"""
import json
import statistics
import sys

run, rounds, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]

GOVERNED_TEXT = (
    "Every governed request is rate-checked, its prompt tokenized, its cost reserved in the "
    "spend store before the call and settled (with a ledger row) after it. SQLite: the store "
    "in a file beside the gateway's config. PostgreSQL: the machine's server, a fresh schema "
    "for the run; the server's own CPU time is not in the gateway's figures (it is not pinned "
    "and runs on either core)."
)
# (compared path, label, file prefix of its runs)
GOVERNED = [("governed", "SQLite", "gov"), ("governed-pg", "PostgreSQL", "gov-pg")]
FRESH = [("governed", "SQLite", "govf"), ("governed-pg", "PostgreSQL", "govf-pg")]
SPECS = {
    "pool": dict(
        goal=1.10,
        others=[("pool10", "10 deployments", "pool")],
        title="## Routing: a pool of 10 deployments (default strategy) vs one deployment",
        text="Goal: CPU per request within 10% of the single deployment, same run, paths taking turns.",
        base="1 deployment",
        name="Routing, pool of 10 vs 1",
    ),
    "gov": dict(
        goal=1.25,
        others=GOVERNED,
        title="## Governance, same prompt: key with rpm, tpm and budget, cost tracking on, vs plain pass-through",
        text=(
            "Goal: CPU per request within 25% of the plain pass-through, same run, paths taking "
            "turns. " + GOVERNED_TEXT + " Every request sends the same prompt, so after the "
            "first its token count comes from the tokenizer's memo of recent texts."
        ),
        base="pass-through",
        name="Governance, same prompt",
    ),
    "govf": dict(
        goal=1.25,
        others=FRESH,
        title="## Governance, fresh prompts: a new text on every request",
        text=(
            "As above, but every request, on both paths, carries six words that no other "
            "request of the run carries (`bench-loadgen --vary`), so the memo never answers: "
            "every prompt is tokenized. Goal: within 25% of the plain pass-through."
        ),
        base="pass-through",
        name="Governance, fresh prompts",
    ),
    "cache": dict(
        goal=1.0,
        strict=True,
        others=[("cached", "memory hit", "cache")],
        title="## Cache: a hit from the memory backend vs plain pass-through",
        text=(
            "The plain gateway with `[cache] max_entries = 4096`: every request is the same, so "
            "every one after the first is answered from memory (key, lookup, zero-cost "
            "governance, the stored answer) without an upstream call. Goal: CPU per request "
            "below the pass-through's (under 1.00×), same run, paths taking turns."
        ),
        base="pass-through",
        name="Cache hit (memory)",
    ),
}
spec = SPECS[kind]
goal = spec["goal"]


def result(path, name):
    """The JSON of PATH in the run NAME (e.g. `gov-sat.r1`); {} when it was not measured."""
    try:
        with open(f"{run}/{path}-{name}.json") as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def cpu(path, name):
    return result(path, name).get("cpu_us_per_req")


def ratio(base, other):
    return other / base if base and other else None


def fmt(v, spec_):
    return "–" if v is None else format(v, spec_)


def saturation(other, prefix):
    """(base CPU, other CPU, median ratio, every round's ratio or None, name of the median
    round). A round without a ratio (no 2xx response, or no CPU time, on either path) is
    listed as "–" and left out of the median."""
    rows, every = [], []
    for k in range(1, rounds + 1):
        name = f"{prefix}-sat.r{k}"
        one, two = cpu("gateway", name), cpu(other, name)
        r = ratio(one, two)
        every.append(r)
        if r is not None:
            rows.append((r, one, two, name))
    if not rows:
        return None, None, None, every, None
    median = sorted(rows)[(len(rows) - 1) // 2]
    return median[1], median[2], statistics.median(r for r, _, _, _ in rows), every, median[3]


def pace(other, name, field, unit):
    """How fast both paths went: req/s at saturation, p50 at the fixed rate."""
    one, two = result("gateway", name).get(field), result(other, name).get(field)
    if one is None or two is None:
        return "–"
    return f"{one:,.0f} → {two:,.0f} {unit}"


def errors(other, names):
    n = sum(result(p, name).get("errors", 0) for p in ("gateway", other) for name in names)
    return f" ({n} errors in the runs)" if n else ""


out = ["", spec["title"], "", spec["text"], ""]
out.append(f"| Load | Against | {spec['base'].capitalize()} CPU µs/req | Compared CPU µs/req | Ratio | Rounds | Result | Req/s or p50 µs, {spec['base']} → compared |")
out.append("|---|---|---:|---:|---:|---|---|---|")
goals = []
for other, label, prefix in spec["others"]:
    one, two, r, every, median = saturation(other, prefix)
    listed = ", ".join("–" if x is None else f"{x:.2f}×" for x in every)
    counted = sum(x is not None for x in every)
    sat = ("saturation", one, two, r, f"median of {counted}: {listed}" if counted else "–",
           pace(other, median, "rps", "req/s") if median else "–",
           errors(other, [f"{prefix}-sat.r{k}" for k in range(1, rounds + 1)]))
    rate = f"{prefix}-rate"
    one, two = cpu("gateway", rate), cpu(other, rate)
    fixed = ("fixed rate", one, two, ratio(one, two), "one run",
             ("p50 " + pace(other, rate, "p50_us", "µs")).replace("p50 –", "–"),
             errors(other, [rate]))
    for load, one, two, r, note, speed, errs in (sat, fixed):
        met = r is not None and (r < goal if spec.get("strict") else r <= goal)
        verdict = "n/a" if r is None else ("PASS" if met else "MISS")
        shown = "–" if r is None else f"{r:.2f}×"
        out.append(f"| {load} | {label} | {fmt(one, '.1f')} | {fmt(two, '.1f')} | {shown} | {note} | {verdict}{errs} | {speed} |")
        bound = "<" if spec.get("strict") else "≤"
        what = f"{spec['name']}, {label}, {load} {bound} {goal:.2f}× {spec['base']}"
        measured = "–" if r is None else f"{shown} ({two:.1f} vs {one:.1f} µs; {note}){errs}"
        goals.append(f"{verdict}\t{what}\t{measured}")
out.append("")
out.append(
    ("" if spec.get("strict") else "A ratio below 1.00× is noise: the compared path does the same work and more. ")
    + "The last "
    "column is not a goal: it shows whether the compared gateway kept up (at the fixed rate, a "
    "p50 far above the pass-through's means it fell behind the schedule and requests queued)."
)
print("\n".join(out))
with open(f"{run}/goals.tsv", "a") as f:
    f.write("".join(g + "\n" for g in goals))
