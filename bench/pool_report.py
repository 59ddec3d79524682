"""Append the routing-cost table (pool of 10 vs one deployment) to a bench report."""
import json
import sys

run = sys.argv[1]


def cpu(path, name):
    with open(f"{run}/{path}-{name}.json") as f:
        return json.load(f).get("cpu_us_per_req")


rows = []
for name, label in (("pool-sat", "saturation"), ("pool-rate", "fixed rate")):
    one, ten = cpu("gateway", name), cpu("pool10", name)
    if one and ten:
        ratio = ten / one
        verdict = "PASS" if ratio <= 1.10 else "MISS"
        rows.append(f"| {label} | {one:.1f} | {ten:.1f} | {ratio:.2f}x | {verdict} |")
print()
print("## Routing: a pool of 10 deployments (default strategy) vs one deployment")
print()
print("Goal: CPU per request within 10% of the single deployment, same run, paths taking turns.")
print()
print("| Load | 1 deployment CPU µs/req | 10 deployments CPU µs/req | Ratio | Result |")
print("|---|---:|---:|---:|---|")
print("\n".join(rows))
