"""Pick the median round of the non-streaming saturation scenario and describe every round.

Usage: sat_rounds.py RUN_DIR ROUNDS PATH...  Reads RUN_DIR/PATH-sat.rK.json (K = 1..ROUNDS),
copies the round with the median gateway/floor CPU ratio (the middle one; without a gateway,
round 1) to RUN_DIR/PATH-sat.json for the report, and prints a markdown section listing each
round's CPU per request and ratio.
"""
import json
import shutil
import statistics
import sys

run, rounds, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]


def cpu(path, k):
    try:
        with open(f"{run}/{path}-sat.r{k}.json") as f:
            return json.load(f).get("cpu_us_per_req")
    except FileNotFoundError:
        return None


rows = []
for k in range(1, rounds + 1):
    floor, gateway = cpu("floor", k), cpu("gateway", k)
    ratio = gateway / floor if floor and gateway else None
    rows.append((k, floor, gateway, ratio))

measured = sorted((r for r in rows if r[3] is not None), key=lambda r: r[3])
chosen = measured[(len(measured) - 1) // 2][0] if measured else 1
for path in paths:
    shutil.copyfile(f"{run}/{path}-sat.r{chosen}.json", f"{run}/{path}-sat.json")


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


print()
print(f"## Rounds: non-streaming saturation, {rounds} rounds")
print()
print("The tables above show the round with the median gateway/floor ratio (marked *).")
print()
print("| Round | floor CPU µs/req | gateway CPU µs/req | gateway vs floor |")
print("|---:|---:|---:|---:|")
for k, floor, gateway, ratio in rows:
    mark = " *" if k == chosen else ""
    print(f"| {k}{mark} | {fmt(floor, '.1f')} | {fmt(gateway, '.1f')} | {fmt(ratio, '.2f')}× |")
if measured:
    ratios = [r[3] for r in measured]
    print()
    print(f"Median ratio {statistics.median(ratios):.2f}×, range {min(ratios):.2f}–{max(ratios):.2f}×.")
