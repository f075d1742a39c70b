"""What ships never deserialises code: no pickle (or torch.load, joblib, dill, marshal, shelve) and no
eval/exec in the extension's runtime packages, and numpy loads never allow pickles. Models load only from ONNX
(inference/models/session.py), and .blend files open with scripts off (tests/test_blend_security.py)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNTIME = [REPO_ROOT / "__init__.py", *sorted((REPO_ROOT / "inference").rglob("*.py")),
           *sorted((REPO_ROOT / "operators").rglob("*.py")), *sorted((REPO_ROOT / "nodes").rglob("*.py"))]
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "torch", "joblib", "dill", "cloudpickle", "marshal", "shelve"}
UNSAFE_CALLS = {"eval", "exec"}


def findings(path: Path, root: Path = REPO_ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in UNSAFE_MODULES:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name in UNSAFE_CALLS:
                found.append(f"{name}()")
            for keyword in node.keywords:
                if keyword.arg == "allow_pickle" and not (isinstance(keyword.value, ast.Constant)
                                                          and keyword.value.value is False):
                    found.append("allow_pickle")
    return [f"{path.relative_to(root)}:{item}" for item in found]


def test_the_runtime_never_unpickles_or_evaluates_code():
    assert len(RUNTIME) > 40  # the scan sees the packages
    assert [f for path in RUNTIME for f in findings(path)] == []


def test_the_scan_finds_what_it_forbids(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import pickle\nfrom torch import load\nimport numpy as np\nnp.load('x', allow_pickle=True)\n"
                      "eval('1')\n")
    assert [f.split(":", 1)[1] for f in findings(sample, root=tmp_path)] == [
        "import pickle", "from torch import ...", "allow_pickle", "eval()"]
