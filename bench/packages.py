"""Installing your packages back on a fresh machine: persistlab's wheelhouse restore vs `pip install` from PyPI vs
`uv pip install --offline` from the same wheelhouse, interleaved, each into a fresh image (venv) with cold caches.
Also on an image without uv (Paperspace's, many hubs'): persistlab unpacks the uv wheel it kept, then installs with it.

The wheels (10 packages people install on Colab and their dependencies, 200+ MB) are fetched once from PyPI into
~/.cache/persistlab-bench/packages (or $PERSISTLAB_BENCH_CACHE); the pip arm downloads from PyPI every time, as a new VM does."""
import os, sys, time, shutil, resource, tempfile, statistics, subprocess
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import timed as _timed

CPU = []  # CPU seconds of each timed call (this process's and its children's): what a busy shared machine distorts least
def timed(f):
    "Wall seconds of `f()`; its CPU seconds go to CPU"
    def cpu():
        a, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + c.ru_utime + c.ru_stime
    c = cpu(); t = _timed(f); CPU.append(cpu() - c); return t
from persistlab.packages import save_packages, restore_packages, find_uv, probe, WHEELHOUSE, wheel_tags
from persistlab.platforms import detect

PKGS = 'numpy pandas scipy scikit-learn matplotlib pyarrow polars duckdb sympy pillow'.split()
CACHE = Path(os.environ.get('PERSISTLAB_BENCH_CACHE') or Path.home()/'.cache/persistlab-bench')/'packages'
ROUNDS = int(os.environ.get('ROUNDS', 3))

def hermetic(base, **kw):
    "Fresh pip and uv caches, no pip configuration: what a new VM has"
    e = {k: v for k, v in os.environ.items() if not k.startswith(('PIP_', 'UV_'))}
    e.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK='1', XDG_CACHE_HOME=str(base/'cache'),
             UV_CACHE_DIR=str(base/'uv-cache'), UV_NO_PROGRESS='1')
    e.update({k: str(v) for k, v in kw.items()})
    return e

def fetch():
    "The wheels, once: `pip download` from PyPI for this interpreter; name==version pins for the whole set"
    w = CACHE/'wheels'
    if not any(w.glob('*.whl')):
        w.mkdir(parents=True, exist_ok=True)
        print(f'fetching {", ".join(PKGS)} (and dependencies) from PyPI into {w} ...', flush=True)
        subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--only-binary=:all:', '-d', str(w), *PKGS], check=True,
                       env=hermetic(CACHE))
    return [f'{n}=={v}' for n, v, _ in map(wheel_tags, sorted(w.glob('*.whl')))]

def image(base, uv):
    "A fresh 'image': an empty venv of this Python"
    if base.exists(): shutil.rmtree(base)
    subprocess.run([uv, 'venv', '-q', '--python', sys.executable, str(base/'v')], check=True, env=hermetic(base))
    return base/'v/bin/python'

def check(py):
    subprocess.run([str(py), '-c', 'import numpy, pandas, scipy, sklearn, matplotlib, pyarrow, polars, duckdb, sympy, PIL'], check=True)

if __name__ == '__main__':
    uv = find_uv()
    assert uv, 'needs uv (pip install uv)'
    pins = fetch()
    size = sum(f.stat().st_size for f in (CACHE/'wheels').glob('*.whl'))
    work = Path(tempfile.mkdtemp(prefix='plbench-pkgs-')); storage = work/'storage'; storage.mkdir()
    # session 1: the user installed the set; persistlab saves its wheels (not timed: done once)
    py0 = image(work/'vm0', uv)
    subprocess.run([uv, 'pip', 'install', '-q', '--python', str(py0), '--offline', '--find-links', str(CACHE/'wheels'), *pins],
                   check=True, env=hermetic(work/'vm0'))
    os.environ.update(hermetic(work/'vm0', PIP_FIND_LINKS=CACHE/'wheels', PIP_NO_INDEX='1'))
    plat = detect(env=dict(HOME=str(work/'home'), PERSISTLAB_PLATFORM='local'))  # the engine remembers --to in a home: not yours
    saved = save_packages(to=storage, python=py0, platform=plat, quiet=True, keep_uv=True)  # this machine's uv came after boot or not
    wh = storage/WHEELHOUSE/probe(py0)['tag']
    for k in ('PIP_FIND_LINKS', 'PIP_NO_INDEX'): os.environ.pop(k)
    print(f'{len(pins)} distributions, {size/1e6:.0f} MB of wheels; saved {len(saved)} into {wh}', flush=True)

    def by_index(b):
        py = image(b, uv)
        t = timed(lambda: subprocess.run([sys.executable, '-m', 'pip', '--python', str(py), 'install', '-q', '--no-cache-dir', *pins],
                                         check=True, env=hermetic(b)))
        check(py); return t
    def by_persistlab(b, tool=None):
        py = image(b, uv); os.environ.update(hermetic(b))
        t = timed(lambda: restore_packages(to=storage, python=py, platform=plat, tool=tool, quiet=True))
        check(py); return t
    def by_persistlab_no_uv(b):
        "A machine with no uv: not on PATH, no `uv` package; persistlab runs in its own Python process, as a kernel would"
        py = image(b, uv); hide = b/'no-uv/uv'; hide.mkdir(parents=True)
        (hide/'__init__.py').write_text("raise ImportError('no uv on this image')\n")
        env = hermetic(b, PATH='/usr/bin:/bin', PYTHONPATH=f"{hide.parent}:{Path(__file__).resolve().parents[1]}", HOME=b/'home')
        code = ('import sys; from persistlab.packages import restore_packages; from persistlab.platforms import detect; '
                f"r = restore_packages(to={str(storage)!r}, python={str(py)!r}, platform=detect(), quiet=True); "
                "assert any(x.path == 'uv' and x.what == 'installed' for x in r), r")
        t = timed(lambda: subprocess.run([sys.executable, '-c', code], check=True, env={**env, 'PERSISTLAB_PLATFORM': 'local'}))
        check(py); return t
    def by_uv(b):
        py = image(b, uv)
        t = timed(lambda: subprocess.run([uv, 'pip', 'install', '-q', '--python', str(py), '--offline', '--find-links', str(wh), *pins],
                                         check=True, env=hermetic(b)))
        check(py); return t
    arms = dict(persistlab=by_persistlab, uv_offline=by_uv, pip_index=by_index, persistlab_no_uv=by_persistlab_no_uv)
    if os.environ.get('PIP_ONLY', '1') != '0': arms['persistlab_pip'] = lambda b: by_persistlab(b, 'pip')
    if os.environ.get('ARMS'): arms = {k: arms[k] for k in os.environ['ARMS'].split(',')}  # e.g. ARMS=persistlab,uv_offline
    times, cpus = {k: [] for k in arms}, {k: [] for k in arms}
    for i in range(ROUNDS):
        order = list(arms)[i % len(arms):] + list(arms)[:i % len(arms)]  # interleaved, rotated
        for k in order:
            times[k].append(arms[k](work/f'{k}{i}')); cpus[k].append(CPU[-1])
            print(f'  round {i+1} {k:<16} {times[k][-1]:6.2f} s  (cpu {cpus[k][-1]:6.2f} s)', flush=True)
        if {'persistlab', 'uv_offline'} <= set(arms):  # this round's ratio: its two arms ran minutes apart at most
            print(f"  round {i+1} persistlab/uv: wall {times['persistlab'][-1]/times['uv_offline'][-1]:.2f}x  "
                  f"cpu {cpus['persistlab'][-1]/cpus['uv_offline'][-1]:.2f}x  load {os.getloadavg()[0]:.1f}", flush=True)
    med, mcpu = {k: statistics.median(v) for k, v in times.items()}, {k: statistics.median(v) for k, v in cpus.items()}
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; medians of {ROUNDS} rounds")
    med = {**dict.fromkeys(['persistlab', 'uv_offline', 'pip_index', 'persistlab_no_uv'], float('nan')), **med}
    mcpu = {**dict.fromkeys(['persistlab', 'uv_offline'], float('nan')), **mcpu}
    print(f"\nrestore from the wheelhouse (uv)        {med['persistlab']:6.2f} s")
    print(f"uv pip install --offline, same wheels   {med['uv_offline']:6.2f} s   persistlab/uv    {med['persistlab']/med['uv_offline']:5.2f}x  (target <= 1.2x; "
          f"in CPU seconds {mcpu['persistlab']:.2f} / {mcpu['uv_offline']:.2f} = {mcpu['persistlab']/mcpu['uv_offline']:.2f}x)")
    print(f"pip install from PyPI (fresh VM)        {med['pip_index']:6.2f} s   pip/persistlab   {med['pip_index']/med['persistlab']:5.1f}x faster  (target >= 5x)")
    print(f"restore on an image without uv          {med['persistlab_no_uv']:6.2f} s   pip/persistlab   {med['pip_index']/med['persistlab_no_uv']:5.1f}x faster  (target >= 5x; uv unpacked from the wheelhouse)")
    if {'persistlab', 'uv_offline'} <= set(arms):
        rw = [a/b for a, b in zip(times['persistlab'], times['uv_offline'])]; rc = [a/b for a, b in zip(cpus['persistlab'], cpus['uv_offline'])]
        print(f"per-round persistlab/uv ratios: wall min {min(rw):.2f}x median {statistics.median(rw):.2f}x max {max(rw):.2f}x; "
              f"cpu min {min(rc):.2f}x median {statistics.median(rc):.2f}x max {max(rc):.2f}x  (CPU: what a loaded machine distorts least)")
    if 'persistlab_pip' in med:
        print(f"restore from the wheelhouse, pip only   {med['persistlab_pip']:6.2f} s   pip/persistlab-pip {med['pip_index']/med['persistlab_pip']:5.1f}x faster")
    shutil.rmtree(work)
