"""`make mutation`: mutation testing of the core modules with mutmut, scored per module.

Runs ``mutmut run`` (the modules are ``[tool.mutmut] only_mutate`` in pyproject.toml, the
tests tests/unit), then prints, per module: mutants, killed, survived, equivalent, and the
score = killed / (all - equivalent), against the goal of 85 %; then every surviving mutant
with its diff. Equivalent mutants (no test can tell them apart: same behaviour) are listed in
tests/mutation_equivalent.toml with the reason. A benchmark-like report, not part of CI.

    .venv/bin/python tests/mutation_report.py [--no-run] [--show-survivors]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EQUIVALENT_FILE = REPO / "tests" / "mutation_equivalent.toml"
GOAL = 0.85
RESULT = re.compile(r"^\s*(?P<id>\S+__mutmut_\d+): (?P<status>[\w ]+)$")


def _mutmut(*args: str) -> str:
    mutmut = Path(sys.executable).with_name("mutmut")
    done = subprocess.run([str(mutmut), *args], cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"mutmut {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


def module_of(mutant: str) -> str:
    """``gateway.admission.xǁAdmissionǁenter__mutmut_9`` -> ``gateway/admission.py``."""
    dotted = mutant.split(".x", 1)[0] if ".xǁ" in mutant else mutant.rsplit(".", 1)[0]
    return dotted.replace(".", "/") + ".py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="Report the last run's results without running again.")
    parser.add_argument("--show-survivors", action="store_true", help="Print the diff of every surviving mutant.")
    options = parser.parse_args()
    if not options.no_run:
        print("running mutmut (a few minutes) ...", flush=True)
        _mutmut("run")
    equivalent: dict[str, str] = tomllib.loads(EQUIVALENT_FILE.read_text()) if EQUIVALENT_FILE.exists() else {}
    statuses: dict[str, str] = {}
    for line in _mutmut("results", "--all", "true").splitlines():
        if match := RESULT.match(line):
            statuses[match["id"]] = match["status"].strip()
    by_module: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for mutant, status in sorted(statuses.items()):
        kind = "equivalent" if mutant in equivalent and status != "killed" else status
        by_module[module_of(mutant)][kind].append(mutant)
    failing = 0
    print(f"\n{'module':45} {'mutants':>7} {'killed':>6} {'survived':>8} {'equivalent':>10} {'score':>6}")
    for module, kinds in sorted(by_module.items()):
        total = sum(len(items) for items in kinds.values())
        killed = len(kinds.get("killed", []))
        counted = total - len(kinds.get("equivalent", []))
        score = killed / counted if counted else 1.0
        failing += score < GOAL
        survived = counted - killed
        mark = "" if score >= GOAL else f"  < {GOAL:.0%}"
        print(f"{module:45} {total:7} {killed:6} {survived:8} {len(kinds.get('equivalent', [])):10} {score:6.1%}{mark}")
    print("\nsurviving mutants (not killed, not marked equivalent):")
    for module, kinds in sorted(by_module.items()):
        for status, mutants in sorted(kinds.items()):
            if status in ("killed", "equivalent"):
                continue
            for mutant in mutants:
                print(f"  {status:10} {mutant}")
                if options.show_survivors:
                    print("    " + _mutmut("show", mutant).replace("\n", "\n    "))
    if equivalent:
        print("\nmarked equivalent (tests/mutation_equivalent.toml):")
        for mutant, reason in sorted(equivalent.items()):
            print(f"  {mutant}: {reason}")
    return 1 if failing else 0


if __name__ == "__main__":
    raise SystemExit(main())
