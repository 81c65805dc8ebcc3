"Archive snapshots of a 20k-file .local: persistlab's save/restore (zstd by the zstd program, by Python's zstandard as on Colab, gzip where neither is) vs plain `tar | gzip -1`"
import os, sys, shutil, tempfile, statistics, subprocess, contextlib
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import pip_like_tree, timed, report
from persistlab.platforms import detect
from persistlab.persist import restore
from persistlab.archive import archive_persist
from persistlab.storage import SNAPDIR
from persistlab.core import zstd_via

ZSTD_TOOLS = ('zstd', 'unzstd', 'zstdcat', 'zstdmt', 'pzstd')

def path_without_zstd(d) -> str:
    "A PATH with every program of this one but the zstd tools"
    d.mkdir()
    for p in os.environ['PATH'].split(os.pathsep):
        if os.path.isdir(p):
            for n in os.listdir(p):
                f = os.path.join(p, n)
                if n not in ZSTD_TOOLS and not (d/n).exists() and os.access(f, os.X_OK) and not os.path.isdir(f): os.symlink(f, d/n)
    return str(d)

@contextlib.contextmanager
def machine(kind, nozstd):
    "This process as a machine with the zstd program (`tool`), only Python's zstandard (`module`, Colab), or neither (`gzip`)"
    path, mod = os.environ['PATH'], sys.modules.get('zstandard')
    if kind != 'tool': os.environ['PATH'] = nozstd
    if kind == 'gzip': sys.modules['zstandard'] = None
    try: yield
    finally:
        os.environ['PATH'] = path
        if kind == 'gzip':
            if mod is None: del sys.modules['zstandard']
            else: sys.modules['zstandard'] = mod

def can(kind, nozstd) -> bool:
    "Can this machine be that one (`module`: is zstandard installed)?"
    with machine(kind, nozstd): return zstd_via() == (None if kind == 'gzip' else kind)

if __name__ == '__main__':
    base = Path(tempfile.mkdtemp(prefix='plbench-')); home = base/'home'
    pip_like_tree(home/'.local', large_mb=4)
    tree_bytes = sum(f.stat().st_size for f in (home/'.local').rglob('*') if f.is_file() and not f.is_symlink())
    nozstd = path_without_zstd(base/'bin')
    kinds = [k for k in ('tool', 'module', 'gzip') if can(k, nozstd)]
    so, ro, size, sp, rp = {k: [] for k in kinds}, {k: [] for k in kinds}, {}, [], []
    for i in range(3):  # interleaved: each round times every arm once, so a busy moment hits them all
        plain, f1 = base/f'plain{i}.tar.gz', base/f'f1-{i}'; f1.mkdir()
        sp.append(timed(lambda: subprocess.run(['tar', '--use-compress-program', 'gzip -1', '-cf', str(plain), '.local'], cwd=home, check=True)))
        rp.append(timed(lambda: subprocess.run(['tar', '-xpf', str(plain), '-C', str(f1)], check=True)))
        shutil.rmtree(f1)
        for k in kinds:
            st, f2 = base/f'st-{k}{i}', base/f'f2-{k}{i}'; st.mkdir(); f2.mkdir()
            os.environ['PERSISTLAB_RUN'] = str(base/f'run-{k}{i}')  # a new VM each time
            pl = detect(env=dict(HOME=str(home), PERSISTLAB_PLATFORM='colab', PERSISTLAB_STORAGE=str(st)))
            with machine(k, nozstd):
                so[k].append(timed(lambda: archive_persist('.local', home=home, platform=pl)))
                ro[k].append(timed(lambda: restore(home=f2, platform=pl)))
            snap = next((st/SNAPDIR).iterdir()); size[k] = (snap.name, snap.stat().st_size)
            shutil.rmtree(f2); shutil.rmtree(st)
    med = statistics.median
    print(f'tree {tree_bytes/1e6:.1f} MB in 20k files (4 random 4 MB files); plain tar.gz {plain.stat().st_size/1e6:.1f} MB; '
          f'median of 3 interleaved rounds')
    for k in kinds:
        print(f'persistlab on a machine with {dict(tool="the zstd program", module="only zstandard (Colab)", gzip="neither")[k]}: '
              f'{size[k][0]}, {size[k][1]/1e6:.1f} MB')
        report(f'  save ({k}) vs tar | gzip -1', med(so[k]), med(sp), 0.5)
        report(f'  restore ({k}) vs tar -x (gzip -1)', med(ro[k]), med(rp), 1.0)
    shutil.rmtree(base)
