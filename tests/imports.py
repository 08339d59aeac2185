"""What a Python module imports, read from its source: for the layering checks
(tests/test_layering.py: which room may import which; tests/protocol/test_layering.py: the
protocol imports only the standard library)."""

from __future__ import annotations

import ast

__all__ = ["imported_names"]


def imported_names(source: str, module: str, is_package: bool) -> list[str]:
    """Absolute names of everything ``source`` (the module ``module``) imports, anywhere in it
    (inside functions and ``try`` too: a lazy import is still a dependency).

    ``from a.b import c`` counts as ``a.b.c``: ``c`` may be a submodule, and ``from rdesk.host
    import app`` depends on rdesk.host.app, not just on rdesk.host. Relative imports are
    resolved against ``module`` (in a package's ``__init__``, ``.`` is the package itself).
    """
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                drop = node.level - 1 if is_package else node.level
                base = base[: len(base) - drop] if drop else base
                prefix = ".".join(base)
                if node.module:
                    names.append(f"{prefix}.{node.module}")
                else:  # ``from .. import host``: each name may be a submodule
                    names.extend(f"{prefix}.{alias.name}" for alias in node.names)
            elif node.module:
                names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names
