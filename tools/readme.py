#!/usr/bin/env python3
"Write README.md from nbs/index.ipynb (Quarto, which nbdev-readme needs, cannot run here); --check fails on drift."
import json, sys, re
from pathlib import Path

root = Path(__file__).resolve().parent.parent
def _src(c): return ''.join(c['source'])
def _directives(src): return {m.group(1).strip() for m in re.finditer(r'^#\|\s*([^\n]+)$', src, re.M)}

def _out_text(o):
    if o.get('output_type') == 'stream': return ''.join(o['text'])
    d = o.get('data', {})
    if 'text/markdown' in d: return None, ''.join(d['text/markdown'])
    return ''.join(d.get('text/plain', ''))

DOCS = 'https://persistlab.github.io/persistlab/'

def _links(md):
    "Links that work from the repository root: images under nbs/, other pages on the docs site"
    md = re.sub(r'\]\((images/[^)]+)\)', r'](nbs/\1)', md)
    return re.sub(r'\]\(([\w-]+\.html)\)', lambda m: f']({DOCS}{m.group(1)})', md)

def render(nb) -> str:
    parts = []
    for c in nb['cells']:
        src = _src(c)
        if c['cell_type'] == 'markdown': parts.append(_links(src.strip())); continue
        ds = _directives(src)
        if 'hide' in ds: continue
        code = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()
        if code and 'echo: false' not in ds and not code.startswith('_ = '): parts.append(f'```python\n{code}\n```')
        for o in c.get('outputs', []):
            t = _out_text(o)
            if isinstance(t, tuple): parts.append(t[1].strip())
            elif t and t.strip(): parts.append(f'```\n{t.rstrip()}\n```')
    return '\n\n'.join(p for p in parts if p) + '\n'

if __name__ == '__main__':
    nb = json.loads((root/'nbs/index.ipynb').read_text())
    new, f = render(nb), root/'README.md'
    if '--check' in sys.argv:
        if not f.exists() or f.read_text() != new:
            sys.exit('README.md is out of sync with nbs/index.ipynb: run `python tools/readme.py` and commit it')
        print('README.md matches nbs/index.ipynb')
    else: f.write_text(new); print('wrote README.md')
