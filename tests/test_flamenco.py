"""The Flamenco job type (flamenco/portrait_relight.js) compiles jobs correctly: runs its node tests, which load
the script against a stub of Flamenco's documented job compiler API (flamenco/test/). Needs node >= 18; a
missing node is a failure, not a skip, so the farm integration never goes untested silently."""

from __future__ import annotations

import re
import shutil
import subprocess

from package_loader import ROOT

FLAMENCO = ROOT / "flamenco"


def test_flamenco_job_compiler_node_tests():
    node = shutil.which("node")
    assert node, "node is not installed: it is needed to test flamenco/portrait_relight.js (node >= 18)"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert int(version.lstrip("v").split(".")[0]) >= 18, f"node {version}: node:test needs node >= 18"

    # Name the files rather than the folder: how `node --test DIR` expands a folder differs between versions.
    test_files = sorted(str(p.relative_to(ROOT)) for p in (FLAMENCO / "test").glob("*.test.js"))
    assert test_files, "no flamenco/test/*.test.js files"
    result = subprocess.run([node, "--test", *test_files], cwd=ROOT, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"node --test failed:\n{output[-6000:]}"
    passed = re.search(r"^# pass (\d+)$", output, re.MULTILINE)
    failed = re.search(r"^# fail (\d+)$", output, re.MULTILINE)
    assert passed and failed, f"unexpected node --test output:\n{output[-3000:]}"
    assert int(failed.group(1)) == 0 and int(passed.group(1)) >= 10, output[-3000:]
