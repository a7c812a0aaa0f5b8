#!/usr/bin/env python3
"""Prints a scenario file with some values replaced: a variant of a shipped scenario.

Usage: simulations/variant.py BASE.yaml KEY=VALUE... > variant.yaml
  KEY is a top-level key (name, seed, nodes, domains, duration_s, ...) or adv.<key> for a key
  of the single `adversaries` entry (adv.count, adv.domains, adv.rate_per_min, adv.start_s,
  adv.strategy, adv.honest_until_s); adv=none drops the `adversaries` entry (the same fleet,
  seed and honest detections without attackers: the baseline for delivery). Every KEY must already be in BASE (the variant changes
  values, never the structure), else it exits 2 naming the key.
  e.g. simulations/variant.py simulations/scenarios/colluders_k3_domains.yaml seed=101 \
           nodes=600 domains=12 adv.rate_per_min=300
"""
import re
import sys


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    base = argv[0]
    with open(base) as f:
        lines = f.read().split("\n")
    adv_lines = [i for i, line in enumerate(lines)
                 if i > 0 and lines[i - 1].startswith("adversaries:") and line.lstrip().startswith("- {")]
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if not sep or not key or not value:
            print(f"variant.py: '{arg}' is not KEY=VALUE", file=sys.stderr)
            sys.exit(2)
        if key == "adv" and value == "none":
            if len(adv_lines) != 1:
                print(f"variant.py: {base}: adv=none: needs exactly one `adversaries` entry on "
                      f"one line, found {len(adv_lines)}", file=sys.stderr)
                sys.exit(2)
            lines[adv_lines[0] - 1] = lines[adv_lines[0]] = None
        elif key.startswith("adv."):
            field = key[4:]
            if len(adv_lines) != 1:
                print(f"variant.py: {base}: {key}: needs exactly one `adversaries` entry on one "
                      f"line, found {len(adv_lines)}", file=sys.stderr)
                sys.exit(2)
            i = adv_lines[0]
            if lines[i] is None:
                print(f"variant.py: {key} after adv=none", file=sys.stderr)
                sys.exit(2)
            new, n = re.subn(rf"([{{,]\s*{re.escape(field)}:\s*)[^,}}]+", rf"\g<1>{value}", lines[i])
            if n != 1:
                print(f"variant.py: {base}: {key}: not in the adversaries entry", file=sys.stderr)
                sys.exit(2)
            lines[i] = new
        else:
            hits = [i for i, line in enumerate(lines) if line is not None and re.match(rf"{re.escape(key)}:\s", line)]
            if len(hits) != 1:
                print(f"variant.py: {base}: {key}: not a top-level key of the base", file=sys.stderr)
                sys.exit(2)
            lines[hits[0]] = f"{key}: {value}"
    header = f"# variant of {base}: {' '.join(argv[1:])}"
    sys.stdout.write(header + "\n" + "\n".join(line for line in lines if line is not None))


if __name__ == "__main__":
    main(sys.argv[1:])
