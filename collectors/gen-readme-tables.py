#!/usr/bin/env python3
"""Regenerates the per-collector tables of collectors/README.md from builtin/*.yml, and the
windows_exporter / Centreon mapping tables of the top-level README.md from compat.yml.

Usage: collectors/gen-readme-tables.py [--check]

The tables sit between the markers `<!-- BEGIN GENERATED: builtin tables -->` and
`<!-- END GENERATED: builtin tables -->` (collectors/README.md), and
`<!-- BEGIN GENERATED: compat tables -->` / `<!-- END GENERATED: compat tables -->`
(README.md); everything else in the READMEs is hand-written. --check exits 1 (and prints a
diff or the problem) when a README is not what the definitions give, or when compat.yml
misses a windows_exporter collector, a Centreon mode, a built-in or an example, or names a
windows_ metric nothing emits; collectors_test_readme_tables runs it.
Needs python3 with PyYAML (Debian: python3-yaml).
"""

import difflib
import glob
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "README.md")
TOP_README = os.path.join(HERE, "..", "README.md")
COMPAT = os.path.join(HERE, "compat.yml")
REFERENCE = os.path.join(HERE, "..", "tests", "collectors", "reference")
BEGIN = "<!-- BEGIN GENERATED: builtin tables -->"
END = "<!-- END GENERATED: builtin tables -->"
COMPAT_BEGIN = "<!-- BEGIN GENERATED: compat tables -->"
COMPAT_END = "<!-- END GENERATED: compat tables -->"

# windows_exporter's collectors: internal/collector/ at 589ec15 (HEAD) and pkg/collector/ at
# v0.29.2 (github.com/prometheus-community/windows_exporter), and centreon-plugins'
# src/os/windows/wsman/plugin.pm modes. compat.yml must map each of them.
WINDOWS_EXPORTER_HEAD = """ad adcs adfs cache container cpu cpu_info dfsr dhcp diskdrive dns exchange
    file fsrmquota gpu hyperv iis license logical_disk memory mscluster msmq mssql net
    netframework nps os pagefile performancecounter physical_disk printer process remote_fx
    scheduled_task service smb smbclient smtp system tcp terminal_services textfile
    thermalzone time udp update vmware""".split()
WINDOWS_EXPORTER_V0292 = """ad adcs adfs cache container cpu cpu_info cs dfsr dhcp diskdrive dns
    exchange filetime fsrmquota hyperv iis license logical_disk logon memory mscluster msmq
    mssql net netframework nps os perfdata physical_disk printer process remote_fx
    scheduled_task service smb smbclient smtp system tcp teradici_pcoip terminal_services
    textfile thermalzone time vmware vmware_blast""".split()
CENTREON_MODES = """certificates cpu eventlog files-date files-size interfaces list-interfaces
    list-processes list-services list-storages memory pages pending-reboot processes services
    storages sessions time updates uptime""".split()


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


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def emitted_metrics():
    names = set()
    for path in glob.glob(os.path.join(HERE, "builtin", "*.yml")) + glob.glob(
            os.path.join(HERE, "examples", "*.yml")):
        for query in load_yaml(path)["queries"]:
            names.update(metric["name"] for metric in query["metrics"])
    return names


def expand_braces(text):
    """windows_iis_{current,total}_x -> both names (one brace group)."""
    match = re.search(r"\{([a-z0-9_,]+)\}", text)
    if not match or "," not in match.group(1):
        return [text]
    return [text[:match.start()] + part + text[match.end():] for part in match.group(1).split(",")]


def mentioned_metrics(markdown):
    """windows_ metric names in backticks: `name`, `name{labels}`, `name_*`, `a_{b,c}_d`."""
    out = []
    markdown = re.sub(r"\bno `[^`]*`", "", markdown)  # "no `windows_x`": named as missing
    for code in re.findall(r"`([^`]*)`", markdown):
        for found in re.finditer(r"windows_[a-z0-9_{},*]*", code):
            token = found.group(0)
            group = re.search(r"\{[a-z0-9_,]*\}[a-z0-9_]", token)
            if group is None and "{" in token:
                token = token[:token.index("{")]  # a label set ("{log,source}", "{mode!=")
            out.extend(expand_braces(token))
    return out


def compat_problems(compat):
    problems = []
    listed = [row["collector"] for row in compat["windows_exporter"]]
    for name in sorted(set(WINDOWS_EXPORTER_HEAD) | set(WINDOWS_EXPORTER_V0292)):
        if name not in listed:
            problems.append(f"windows_exporter collector '{name}' has no row")
    modes = [row["mode"] for row in compat["centreon"]]
    for mode in CENTREON_MODES:
        if mode not in modes:
            problems.append(f"Centreon mode '{mode}' has no row")
    # Every family of the reference outputs falls under a listed collector (longest prefix).
    prefixes = sorted(listed, key=len, reverse=True)
    for path in glob.glob(os.path.join(REFERENCE, "e2e-output-*.txt")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.startswith("# TYPE windows_"):
                    continue
                family = line.split()[2][len("windows_"):]
                if not any(family.startswith(p + "_") for p in prefixes):
                    problems.append(f"{os.path.basename(path)}: windows_{family} matches no row")
    # Every built-in and every example is named somewhere.
    here = " ".join(row["here"] for row in compat["windows_exporter"] + compat["centreon"])
    for path in sorted(glob.glob(os.path.join(HERE, "builtin", "*.yml"))):
        name = os.path.basename(path)[:-4]
        if not re.search(rf"(^|[ ,]){name}( |,|$)", here):
            problems.append(f"built-in collector '{name}' is in no row's 'here'")
    for path in sorted(glob.glob(os.path.join(HERE, "examples", "*.yml"))):
        name = "examples/" + os.path.basename(path)
        if name not in here:
            problems.append(f"example '{name}' is in no row's 'here'")
    emitted = emitted_metrics()
    for row in compat["windows_exporter"] + compat["centreon"]:
        for name in mentioned_metrics(row.get("notes", "") + " " + row.get("metrics", "")):
            if name.startswith("windows_exporter_"):
                continue
            if name.endswith("*"):
                if not any(m.startswith(name[:-1]) for m in emitted):
                    problems.append(f"no metric emitted matches `{name}`")
            elif name not in emitted:
                problems.append(f"`{name}` is named in compat.yml but no definition emits it")
    return problems


def here_text(here):
    if here.startswith("examples/"):
        first, _, rest = here.partition(" ")
        return f"[`collectors/{first}`](collectors/{first})" + (" " + rest if rest else "")
    if here in ("–", "custom collector", "self-metrics"):
        return here
    return ", ".join(f"`{part.split(' ')[0]}`" + part[len(part.split(' ')[0]):]
                     for part in here.split(", "))


def compat_tables(compat):
    out = ["| windows_exporter collector | Here | Notes |", "|---|---|---|"]
    for row in compat["windows_exporter"]:
        name = row["collector"]
        if row.get("self"):
            name = f"(its own `windows_{name}_*`)"
        elif row.get("since"):
            name += f" ({row['since']} only)"
        out.append(f"| {name} | {here_text(row['here'])} | {row['notes']} |")
    out += ["", "Centreon `os::windows::wsman::plugin` modes and what replaces them:", "",
            "| Centreon mode | Here | Metrics |", "|---|---|---|"]
    for row in compat["centreon"]:
        out.append(f"| {row['mode']} | {here_text(row['here'])} | {row['metrics']} |")
    return "\n".join(out) + "\n"


def regenerate(path, begin, end, body, check):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, stop = text.index(begin) + len(begin), text.index(end)
    wanted = text[:start] + "\n\n" + body + "\n" + text[stop:]
    if check:
        if wanted != text:
            sys.stdout.writelines(difflib.unified_diff(
                text.splitlines(True), wanted.splitlines(True), path, "generated"))
            print(f"{os.path.relpath(path)} is stale: run collectors/gen-readme-tables.py")
            return 1
        return 0
    with open(path, "w", encoding="utf-8") as f:
        f.write(wanted)
    return 0


def main():
    check = "--check" in sys.argv[1:]
    compat = load_yaml(COMPAT)
    problems = compat_problems(compat)
    for problem in problems:
        print("collectors/compat.yml: " + problem)
    status = 1 if problems else 0
    status |= regenerate(README, BEGIN, END, generated(), check)
    status |= regenerate(TOP_README, COMPAT_BEGIN, COMPAT_END, compat_tables(compat), check)
    return status


if __name__ == "__main__":
    sys.exit(main())
