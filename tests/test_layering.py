"drnb's import direction, read from its source: what each layer may import (every `import`, also inside functions)."
import ast
from pathlib import Path
import pytest

PKG = Path(__file__).resolve().parent.parent/'drnb'
PAPERS = {'drnb.models.zoomin', 'drnb.models.clpi', 'drnb.models.collab', 'drnb.models.mining'}

def module_name(p:Path)->str:
    parts = p.relative_to(PKG.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)

def drnb_imports(p:Path)->set:
    "The drnb modules a file imports, relative imports resolved."
    me = module_name(p).split('.')
    pkg = me if p.name == '__init__.py' else me[:-1]
    out = set()
    for n in ast.walk(ast.parse(p.read_text())):
        if isinstance(n, ast.Import): names = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            base = (pkg[:len(pkg) - n.level + 1] if n.level else []) + (n.module.split('.') if n.module else [])
            names = ['.'.join(base)] if n.module else ['.'.join(base + [a.name]) for a in n.names]
        else: continue
        out |= {x for x in names if x == 'drnb' or x.startswith('drnb.')}
    return out - {'drnb'}

MODULES = {module_name(p): drnb_imports(p) for p in PKG.rglob('*.py') if p.name != '_modidx.py'}

def under(imports, *prefixes): return {i for i in imports if any(i == p or i.startswith(p + '.') for p in prefixes)}

def test_the_parser_sees_relative_and_function_level_imports():
    assert 'drnb.core' in MODULES['drnb.metrics']                    # `from .core import ...`
    assert 'drnb.data.block' in MODULES['drnb.methods']              # imported inside a function
    assert 'drnb.runner' in MODULES['drnb.cli']

def test_core_imports_no_drnb_module():
    assert MODULES['drnb.core'] == set()

@pytest.mark.parametrize('mod', ['drnb.synth', 'drnb.metrics', 'drnb.models.backbones', 'drnb.data.formats', 'drnb.data.preprocess', 'drnb.data.block'])
def test_foundations_import_only_core(mod):
    allowed = {'drnb.core'} | ({'drnb.synth', 'drnb.data.formats', 'drnb.data.preprocess', 'drnb.data'} if mod.startswith('drnb.data') else set())
    assert MODULES[mod] <= allowed, f"{mod} imports {sorted(MODULES[mod] - allowed)}"

@pytest.mark.parametrize('mod', sorted(PAPERS))
def test_a_paper_imports_no_other_paper_nor_the_explorer_nor_the_runner(mod):
    bad = (MODULES[mod] & (PAPERS - {mod})) | under(MODULES[mod], 'drnb.interpret.explorer', 'drnb.runner', 'drnb.cli')
    assert not bad, f"{mod} imports {sorted(bad)}"

def test_attribution_registry_and_reporting_import_no_paper():
    for mod in ('drnb.interpret.attribution', 'drnb.methods', 'drnb.report'):
        assert not MODULES[mod] & PAPERS, f"{mod} imports {sorted(MODULES[mod] & PAPERS)}"

def test_only_the_cli_imports_the_runner():
    users = sorted(m for m, imps in MODULES.items() if 'drnb.runner' in imps and m != 'drnb.cli')
    assert users == [], f"the runner is imported by {users}"
