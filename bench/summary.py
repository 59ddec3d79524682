"""Print the report's closing section: every goal of the run with its result.

Usage: summary.py GOALS_FILE  (lines "RESULT<TAB>GOAL<TAB>MEASURED", RESULT one of PASS, MISS,
n/a, as bench-loadgen report and compare.py append them).
"""
import sys

with open(sys.argv[1]) as f:
    goals = [line.rstrip("\n").split("\t") for line in f if line.strip()]

counts = {r: sum(1 for g in goals if g[0] == r) for r in ("PASS", "MISS", "n/a")}
print()
print("## Every goal")
print()
print(f"{counts['PASS']} met, {counts['MISS']} missed, {counts['n/a']} not measured, of {len(goals)}.")
print()
print("| Goal | Measured | Result |")
print("|---|---|---|")
for result, goal, measured in goals:
    print(f"| {goal} | {measured} | {result} |")
