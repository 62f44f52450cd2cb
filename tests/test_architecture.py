"""The architecture holds: no module imports a module that imports it back.

The layers themselves are import-linter contracts (pyproject.toml, `make lint`); this test
catches a cycle anywhere, including inside one package.
"""

from __future__ import annotations

import grimp


def test_no_module_imports_a_module_that_imports_it_back():
    graph = grimp.build_graph("bot", "webhooks")
    cycles = [
        (module, imported)
        for module in sorted(graph.modules)
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.chain_exists(importer=imported, imported=module)
    ]
    assert cycles == []
