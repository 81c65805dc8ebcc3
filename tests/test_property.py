"Property: persist, then restore on a fresh home, reproduces any tree exactly"
import os, subprocess, shutil, tempfile
from pathlib import Path
from hypothesis import given, settings, strategies as st, HealthCheck
from conftest import snapshot, Sandbox
from persistlab.platforms import detect
from persistlab.persist import persist
from persistlab.storage import SCRIPT, BACKUP

names = st.text(st.characters(codec='utf-8', exclude_characters='/\x00', exclude_categories=('Cs',)), min_size=1, max_size=12)\
          .filter(lambda n: n not in ('.', '..') and len(n.encode()) < 200)
def trees(depth=2):
    leaf = st.one_of(st.binary(max_size=64).map(lambda b: ('f', b, 0o644)),
                     st.binary(max_size=8).map(lambda b: ('f', b, 0o755)),
                     names.map(lambda t: ('l', t)))
    if depth == 0: return st.dictionaries(names, leaf, max_size=4)
    return st.dictionaries(names, st.one_of(leaf, trees(depth-1).map(lambda d: ('d', d))), max_size=5)

def same(got, want):
    "Equal, but for the `share/jupyter` parents persistlab adds to `.local` to keep Jupyter's runtime dir local"
    extra = {k for k in ('share', 'share/jupyter') if k in got and k not in want}
    return {k: v for k, v in got.items() if k not in extra} == want

def build(p, t):
    p.mkdir(parents=True, exist_ok=True)
    for n, v in t.items():
        q = p/n
        if v[0] == 'f': q.write_bytes(v[1]); os.chmod(q, v[2])
        elif v[0] == 'l': os.symlink(v[1], q)  # dangling or not, links are kept as links
        else: build(q, v[1])

@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tree=trees(), pre_home=st.sampled_from(['none', 'empty', 'hollow', 'file', 'dir']), name=st.sampled_from(['.local', '.config/my app', '.ünï']))
def test_persist_then_restore_reproduces_the_tree(tree, pre_home, name):
    with tempfile.TemporaryDirectory() as d:
        sb = Sandbox(d); src = sb.home/name
        build(src, tree); want = snapshot(src)
        pl = detect(env=dict(HOME=str(sb.home), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(sb.storage)))
        persist(name, home=sb.home, platform=pl)
        assert same(snapshot(src.resolve()), want)
        fresh = sb.base/'fresh'; target = fresh/name
        if pre_home == 'empty': target.mkdir(parents=True)
        elif pre_home == 'file': target.parent.mkdir(parents=True, exist_ok=True); target.write_text('image')
        elif pre_home == 'hollow': (target/'x/y').mkdir(parents=True)  # only empty folders (a fresh image's): no data, no backup
        elif pre_home == 'dir': (target/'x').mkdir(parents=True); (target/'x/f').write_text('image')  # data: goes to the backup
        fresh.mkdir(exist_ok=True)
        r = subprocess.run(['sh', str(sb.storage/SCRIPT)], env=dict(HOME=str(fresh), PATH='/usr/bin:/bin'), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert target.is_symlink() and same(snapshot(target.resolve()), want)
        if pre_home in ('file', 'dir'): assert (sb.storage/BACKUP).is_dir()
        else: assert not (sb.storage/BACKUP).exists(), list((sb.storage/BACKUP).rglob('*'))
