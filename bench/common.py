"Shared helpers for the benchmarks: a pip-like tree, timing, and a sandbox environment"
import os, time, statistics, subprocess, tempfile, shutil
from pathlib import Path

# a bench is a machine of its own: its once-per-VM markers go to its own temp folder, never this host's /run/persistlab
# (where they would make a real `%load_ext persistlab` here skip its restore)
if 'PERSISTLAB_RUN' not in os.environ:  # removed when the bench ends (the benches' many runs had left one each in /tmp)
    import atexit
    os.environ['PERSISTLAB_RUN'] = tempfile.mkdtemp(prefix='plbench-run-')
    atexit.register(shutil.rmtree, os.environ['PERSISTLAB_RUN'], True)

def pip_like_tree(p, n_small=20000, n_large=4, large_mb=8):
    "About 20k small files in nested packages plus a few large ones, like a pip `.local`"
    p = Path(p); site = p/'lib/python3.11/site-packages'
    for i in range(n_small):
        d = site/f'pkg{i % 120}'/f'sub{i % 9}'
        if i < 1080: d.mkdir(parents=True, exist_ok=True)
        (d/f'm{i}.py').write_bytes(b'# module\n' * (1 + i % 40))
    (p/'bin').mkdir(parents=True, exist_ok=True)
    for i in range(n_large): (p/f'lib/big{i}.so').write_bytes(os.urandom(large_mb << 20))
    return p

def timed(f):
    t = time.perf_counter(); f(); return time.perf_counter() - t

def sh(*cmd, **kw): subprocess.run(cmd, check=True, **kw)

def report(name, ours, plain, target):
    r = ours / plain
    print(f'{name:<48} persistlab {ours*1000:8.1f} ms   plain {plain*1000:8.1f} ms   ratio {r:5.2f}x  (target {target}x)')
    return r
