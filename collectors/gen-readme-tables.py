#!/usr/bin/env python3
"""Regenerates the per-collector tables of collectors/README.md from builtin/*.yml.

Usage: collectors/gen-readme-tables.py [--check]

The tables sit between the markers `<!-- BEGIN GENERATED: builtin tables -->` and
`<!-- END GENERATED: builtin tables -->`; everything else in the README is hand-written.
--check exits 1 (and prints a diff) when the README is not what the definitions give, so
a definition change without a README change fails (collectors_test_readme_tables runs it).
Needs python3 with PyYAML (Debian: python3-yaml).
"""

import difflib
import glob
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "README.md")
BEGIN = "<!-- BEGIN GENERATED: builtin tables -->"
END = "<!-- END GENERATED: builtin tables -->"


def classes(definition):
    found = []
    for query in definition["queries"]:
        words = query["wql"].split()
        upper = [w.upper() for w in words]
        name = words[upper.index("FROM") + 1]
        if query.get("namespace", "root/cimv2").lower() != "root/cimv2":
            name = query["namespace"] + ":" + name
        if name not in found:
            found.append(name)
    return found


def scale_text(scale):
    return {1e-7: "× 1e-7", 0.125: "× 0.125"}.get(scale, f"× {scale:g}")


def source(metric):
    if metric.get("info"):
        text = "1 (info)"
    elif metric.get("count"):
        text = "rows per label set (count)"
    elif "enum" in metric:
        text = f"one-hot over `{metric['enum']['property']}`"
    elif "hook" in metric:
        text = f"hook `{metric['hook']}`"
    else:
        text = metric["value"]
        if metric.get("value_type") == "datetime":
            text += " (datetime → Unix s)"
        elif metric.get("value_type") == "boolean":
            text += " (boolean)"
    if "scale" in metric:
        text += " " + scale_text(float(metric["scale"]))
    if "divide_by" in metric:
        text += " / " + metric["divide_by"]
    const = metric.get("const_labels") or {}
    if const:
        text += " (" + ", ".join(f"{k}={v}" for k, v in const.items()) + ")"
    return text


def labels(metric):
    names = list((metric.get("labels") or {}).keys()) + list(
        (metric.get("const_labels") or {}).keys())
    if "enum" in metric:
        names.append(metric["enum"]["label"])
    return ", ".join(names) if names else "–"


def name_sets(metric):
    sets = metric.get("compat")
    return ", ".join(sets) if sets else "both"


def section(path):
    with open(path, encoding="utf-8") as f:
        definition = yaml.safe_load(f)
    rows = {}
    order = []
    for query in definition["queries"]:
        for metric in query["metrics"]:
            name = metric["name"]
            if name not in rows:
                order.append(name)
                rows[name] = {"type": metric["type"], "labels": labels(metric),
                              "sets": name_sets(metric), "sources": []}
            rows[name]["sources"].append(source(metric))
    out = [f"### `{definition['name']}`", "", definition.get("help", ""), "",
           "Classes: " + ", ".join(f"`{c}`" for c in classes(definition)), "",
           "| Metric | Type | Labels | Name set | Source |", "|---|---|---|---|---|"]
    for name in order:
        row = rows[name]
        out.append(f"| `{name}` | {row['type']} | {row['labels']} | {row['sets']} | "
                   + "; ".join(row["sources"]) + " |")
    return "\n".join(out) + "\n"


def generated():
    paths = sorted(glob.glob(os.path.join(HERE, "builtin", "*.yml")))
    return "\n".join(section(p) for p in paths)


def main():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    wanted = text[:start] + "\n\n" + generated() + "\n" + text[end:]
    if "--check" in sys.argv[1:]:
        if wanted != text:
            sys.stdout.writelines(difflib.unified_diff(
                text.splitlines(True), wanted.splitlines(True), "README.md", "generated"))
            print("collectors/README.md is stale: run collectors/gen-readme-tables.py")
            return 1
        return 0
    with open(README, "w", encoding="utf-8") as f:
        f.write(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
