"The layers DESIGN.md draws, read from the package's own imports (ast): siblings that import each other are a cycle"
import ast
from pathlib import Path
import pytest

PKG = Path(__file__).resolve().parent.parent/'persistlab'
FRONT = {'magics', 'forms', 'cli'}

def imports(mod) -> set:
    "The persistlab modules `mod` imports anywhere in its file (top level or inside a function)"
    out = set()
    for n in ast.walk(ast.parse((PKG/f'{mod}.py').read_text())):
        if isinstance(n, ast.Import):
            out |= {a.name.split('.')[1] for a in n.names if a.name.startswith('persistlab.')}
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ''
            if n.level == 1 or base == 'persistlab' or base.startswith('persistlab.'):
                sub = base.split('.', 1)[1] if base.startswith('persistlab.') else (base if n.level == 1 else '')
                if sub: out.add(sub.split('.')[0])
                else: out |= {a.name for a in n.names if (PKG/f'{a.name}.py').exists()}  # `from . import procs`
    return out - {mod}

MODS = sorted(p.stem for p in PKG.glob('*.py') if not p.stem.startswith('_'))

def test_the_reader_sees_imports_of_every_form():
    "The parser itself: each way of writing an import is found (else the tests below could not fail)"
    g = {m: imports(m) for m in MODS}
    assert {'procs', 'keys', 'platforms'} <= g['ssh']  # `from . import procs`, `from .keys import`, `from .platforms import`
    assert 'tunnel' in g['magics'] or 'tunnel' in g['forms']  # the front ends compose tunnel with ssh, inside functions

@pytest.mark.parametrize('a,b', [('ssh', 'tunnel'), ('tunnel', 'ssh')])
def test_ssh_and_tunnel_are_siblings(a, b):
    assert b not in imports(a), f"{a} imports {b}: ssh and tunnel stand side by side on persistlab.keys (compose them in a front end)"

def test_keys_sit_below_ssh_and_tunnel():
    assert not imports('keys') & ({'ssh', 'tunnel'} | FRONT), imports('keys')
    assert 'keys' in imports('ssh') and 'keys' in imports('tunnel')

def test_engines_never_import_front_ends():
    bad = {m: imports(m) & FRONT for m in MODS if m not in FRONT and m != '__init__' and imports(m) & FRONT}
    assert not bad, bad

def test_the_hub_door_stands_beside_tunnel_and_the_laptop_client_alone():
    "hubdoor builds on ssh and keys, never on tunnel, and nothing below it imports it; the laptop's client imports no persistlab"
    assert 'tunnel' not in imports('hubdoor') and {'ssh', 'keys', 'connect'} <= imports('hubdoor')
    assert not any('hubdoor' in imports(m) for m in ('ssh', 'tunnel', 'keys', 'connect', 'core', 'procs', 'platforms'))
    assert imports('connect') == set()
