"""Append a same-run comparison table to a bench report: the routing cost (pool of 10 vs
one deployment; the default) or, with the argument `governed`, the governance cost (a key
with rpm, tpm and a budget, and cost tracking, vs plain pass-through)."""
import json
import sys

run = sys.argv[1]
what = sys.argv[2] if len(sys.argv) > 2 else "pool10"


def cpu(path, name):
    with open(f"{run}/{path}-{name}.json") as f:
        return json.load(f).get("cpu_us_per_req")


if what == "governed":
    prefix, other, goal = "gov", "governed", 1.25
    title = "## Governance: key with rpm, tpm and budget, cost tracking on, vs plain pass-through"
    text = ("Goal: CPU per request within 25% of the plain pass-through, same run, paths taking "
            "turns. Every governed request is rate-checked, its prompt tokenized, its cost reserved "
            "in the SQLite spend store before the call and settled (with a ledger row) after it.")
    header = "| Load | Pass-through CPU µs/req | Governed CPU µs/req | Ratio | Result |"
else:
    prefix, other, goal = "pool", "pool10", 1.10
    title = "## Routing: a pool of 10 deployments (default strategy) vs one deployment"
    text = "Goal: CPU per request within 10% of the single deployment, same run, paths taking turns."
    header = "| Load | 1 deployment CPU µs/req | 10 deployments CPU µs/req | Ratio | Result |"

rows = []
for name, label in ((f"{prefix}-sat", "saturation"), (f"{prefix}-rate", "fixed rate")):
    one, ten = cpu("gateway", name), cpu(other, name)
    if one and ten:
        ratio = ten / one
        verdict = "PASS" if ratio <= goal else "MISS"
        rows.append(f"| {label} | {one:.1f} | {ten:.1f} | {ratio:.2f}x | {verdict} |")
print()
print(title)
print()
print(text)
print()
print(header)
print("|---|---:|---:|---:|---|")
print("\n".join(rows))
