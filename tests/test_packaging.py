"""The environment files agree: environment.yml mirrors pyproject.toml's pins."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    out = {}
    for line in lines:
        m = re.match(r"^\s*-?\s*\"?([A-Za-z0-9_.-]+)\s*((?:==|>=|<=|<|>|~=)[^\"#]*)\"?", line)
        if m:
            out[m.group(1).lower()] = m.group(2).split(";")[0].replace(" ", "").strip()  # no env marker
    return out


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = _pins(project["dependencies"] + [d for name in ("course", "test", "data", "serve", "parity")
                                              for d in extras[name]])
    assert {"torch", "uvicorn", "httptools", "aiohttp"} <= set(wanted)
    env = _pins((ROOT / "environment.yml").read_text().splitlines())
    assert "python" in env and env["python"].startswith("=3.11") or "python=3.11" in (ROOT / "environment.yml").read_text()
    for name, spec in wanted.items():
        assert env.get(name) == spec, f"environment.yml has {name}{env.get(name)}, pyproject {name}{spec}"


def test_core_pins():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "tensorflow==2.21.0" in deps and "tensorflow-text==2.21.1" in deps
    assert "keras-hub==0.32.0" in deps and "keras>=3.15,<3.16" in deps


def test_ci_runs_make_test_only():
    lines = [l for l in (ROOT / ".ci" / "run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert lines[-1].strip() == "exec make test"


def test_make_test_checks_contracts_then_runs_jax():
    """make test: lint-imports first (a broken contract fails the target), then pytest, then the JAX run."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: lint \$\(STAMP\)$", makefile, re.M), "make test must depend on lint"
    assert re.search(r"^lint: .*\n\t\$\(BIN\)/lint-imports ", makefile, re.M)
    jax = re.search(r"^test-jax: .*?\n\n", makefile, re.M | re.S).group(0)
    assert "KERAS_BACKEND=jax" in jax and "-m backend_agnostic" in jax
    assert "$(MAKE) --no-print-directory test-jax" in makefile.split("\ntest-jax:")[0]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    test_extra = project["project"]["optional-dependencies"]["test"]
    assert any(d.startswith("import-linter==") for d in test_extra) and "jax==0.10.2" in test_extra
    # two processes, one file each at a time (module fixtures stay single), the long notebooks handed out first
    assert "pytest-xdist==3.8.0" in test_extra
    assert re.search(r"-m pytest \$\(NOTEBOOKS\) tests -n \$\(PYTEST_WORKERS\) --dist loadfile", makefile)
    assert "backend_agnostic" in " ".join(project["tool"]["pytest"]["ini_options"]["markers"])
    assert {c["id"] for c in project["tool"]["importlinter"]["contracts"]} >= {
        "layers", "data-builds-no-models", "layers-know-no-models", "engine-knows-no-front-end", "private-modules"}
