"""`tests/` mirrors the packages (STYLE.md, "Tests"): the behaviour of each module
`<package>/_name.py` is tested in `tests/<package>/test_name.py`."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "engine/llm", "engine/report", "routes", "cache")


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).glob("*.py") if p.name != "__init__.py")


def mirrored(module: Path) -> Path:
    """The test file of `module`: `engine/llm/_sliding.py` -> `tests/engine/llm/test_sliding.py`."""
    folder = module.parent.relative_to(ROOT)
    return ROOT / "tests" / folder / f"test_{module.stem.removeprefix('_')}.py"


def test_the_mirror_of_a_module_is_its_test_file() -> None:
    module = ROOT / "engine" / "llm" / "_sliding.py"
    assert mirrored(module) == ROOT / "tests" / "engine" / "llm" / "test_sliding.py"
    # Every package is read: a wrong folder would let the test below pass on nothing.
    assert all(_modules(package) for package in PACKAGES)


def test_every_module_has_its_mirrored_test_file() -> None:
    missing = [
        f"{module.relative_to(ROOT)} -> {mirrored(module).relative_to(ROOT)}"
        for package in PACKAGES
        for module in _modules(package)
        if not mirrored(module).is_file()
    ]
    assert not missing, "modules without their mirrored test file: " + ", ".join(missing)
