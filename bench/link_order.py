#!/usr/bin/env python3
"""The functions a profiled run of the gateway executed, for the linker's
--symbol-ordering-file (see bench/link-order.sh and crates/liter-llm-cli/build.rs).

    link_order.py MAP OUT CALLGRIND_FILE...

MAP is LLD's map of the profiled binary (-Map): every input section of .text with its
address and size. Each callgrind file was written with
--dump-instr=yes --compress-pos=no, so every cost line of the binary starts with the
address of an executed instruction (the binary's own address, not the relocated one),
then its line and its instruction count. Each
executed address is credited to the .text input section holding it; OUT gets one
symbol per executed section.

The files are tiers, in order: the functions the first file's run executed come first,
then those only later files' runs executed, and so on; within a tier, the most executed
first, so the hot path lies densest. The first files are the requests of the memory
bench's idle gateways (one request each), then the other runs' requests, then start-up,
then shutting down (link-order.sh), so an idle gateway's code is one contiguous
stretch: Linux maps a binary's code 64 KiB at a time around each page run, and a
function of a later tier placed among it would be mapped (and counted in RSS) for
nothing; and start-up's code, which the gateway hands back once it is done, is not
faulted back in by the requests around it.
"""

import bisect
import re
import sys


def sections(map_path):
    """(start, size, symbol) of each .text input section of one function.

    With function sections, each function's section is `.text.` and its (mangled)
    name, sometimes with a `unlikely.`-style prefix between; the map's symbol lines are
    demangled, so the name is taken from the section's."""
    out = []
    in_text = False
    with open(map_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            cols = line.split()
            if len(cols) < 5 or not re.fullmatch(r"[0-9a-f]+", cols[0]):
                continue
            if len(cols) == 5 and cols[4].startswith("."):
                # An output section.
                in_text = cols[4] == ".text"
                continue
            m = re.search(r":\(\.text\.(?:(?:unlikely|hot|startup|exit|split)\.)?(.+)\)$", line.rstrip())
            if in_text and m:
                size = int(cols[2], 16)
                if size > 0:
                    out.append((int(cols[0], 16), size, m.group(1)))
    return sorted(out)


def executed(path, binary_name):
    """Instructions executed per address of the binary in one callgrind file."""
    counts = {}
    objects = {}
    ours = False
    after_call = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("calls="):
                after_call = True
                continue
            if line.startswith(("ob=", "cob=")):
                m = re.match(r"c?ob=\((\d+)\)(?: (.*))?", line)
                if m and m.group(2):
                    objects[m.group(1)] = m.group(2).strip()
                if line.startswith("ob=") and m:
                    ours = objects.get(m.group(1), "").endswith(binary_name)
                continue
            if not ours or not line.startswith("0x"):
                continue
            cols = line.split()
            if len(cols) >= 3:
                addr = int(cols[0], 16)
                # A call's line carries the callee's inclusive cost: the call
                # instruction ran, its cost is the callee's.
                n = 0 if after_call else int(cols[2])
                counts[addr] = counts.get(addr, 0) + n
            after_call = False
    return counts


def main():
    map_path, out_path, *runs = sys.argv[1:]
    table = sections(map_path)
    starts = [s for s, _, _ in table]
    cost = {}
    tier = {}
    for t, run in enumerate(runs):
        for addr, n in executed(run, "liter-llm").items():
            i = bisect.bisect_right(starts, addr) - 1
            if i >= 0 and addr < table[i][0] + table[i][1]:
                sym = table[i][2]
                cost[sym] = cost.get(sym, 0) + n
                tier.setdefault(sym, t)
    ranked = sorted(cost, key=lambda s: (tier[s], -cost[s], s))
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("".join(s + "\n" for s in ranked))
    print(f"link-order: {len(ranked)} functions of {len(table)} in .text", file=sys.stderr)


if __name__ == "__main__":
    main()
