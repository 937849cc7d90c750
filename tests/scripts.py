"""Load a script of the repository (an example, a benchmark) as a module, to test its parts."""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path
    from types import ModuleType


def load_script(path: Path, name: str) -> ModuleType:
    """`path` run as the module `name` (registered in `sys.modules`, so dataclass and attrs
    decorators in it can find their module); its folder is on `sys.path` for its imports."""
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
