"""persist of a 20k-file .local vs the plain tools, same filesystem and across filesystems (/dev/shm -> disk); and the cost
per entry of persisting and restoring 10 / 100 / 400 small paths: in one call, one command at a time, and a fresh-home restore

`python bench/persist.py` runs both parts; `python bench/persist.py entries` (or `tree`) only one of them, `entries 10 100` only those sizes;
`cross` only the cross-filesystem tree. ROUNDS=5 for more interleaved rounds (3 by default)."""
import os, sys, shutil, tempfile, statistics, resource
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import pip_like_tree, timed, sh, report
from persistlab.platforms import detect
import persistlab.storage as storage
from persistlab.persist import persist, restore

ROUNDS = int(os.environ.get('ROUNDS', 3))

def cpu():
    "CPU seconds of this process and its waited-for children (cp, rm): what a busy shared machine distorts least"
    a, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + c.ru_utime + c.ru_stime

def one(base_home, base_storage, ours):
    "(wall, cpu) seconds of one persist of a fresh 20k-file .local, by persistlab or by the plain tools"
    home, st = Path(tempfile.mkdtemp(dir=base_home)), Path(tempfile.mkdtemp(dir=base_storage))
    pip_like_tree(home/'.local'); sh('sync')
    pl = detect(env=dict(HOME=str(home), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(st)))
    cross = os.stat(home).st_dev != os.stat(st).st_dev
    c = cpu()
    if ours: t = timed(lambda: persist('.local', home=home, platform=pl))
    elif cross: t = timed(lambda: (sh('cp', '-a', str(home/'.local'), str(st/'.local')), sh('rm', '-rf', str(home/'.local')),
                                   sh('ln', '-s', str(st/'.local'), str(home/'.local'))))
    else: t = timed(lambda: (sh('mv', str(home/'.local'), str(st/'.local')), sh('ln', '-s', str(st/'.local'), str(home/'.local'))))
    c = cpu() - c; sh('sync')
    # the trees stay until the bench ends: ext4 without a journal skips inodes freed in the last 30 s when it creates
    # files, so removing a round's copy right away slows the next round's (whichever arm comes next)
    return t, c

def compare(name, a, b, target, n=ROUNDS):
    "`n` rounds, the two arms in turn (which goes first alternates); per-round ratios, their min and median"
    w, c = dict(ours=[], plain=[]), dict(ours=[], plain=[])
    print(f'{name}  (load average {os.getloadavg()[0]:.1f})')
    for i in range(n):
        for arm in (('plain', 'ours') if i % 2 == 0 else ('ours', 'plain')):
            t, u = one(a, b, arm == 'ours'); w[arm].append(t); c[arm].append(u)
        print(f'  round {i+1}: persistlab {w["ours"][-1]:6.2f} s (cpu {c["ours"][-1]:5.2f})   plain {w["plain"][-1]:6.2f} s '
              f'(cpu {c["plain"][-1]:5.2f})   ratio {w["ours"][-1]/w["plain"][-1]:.2f}x   load {os.getloadavg()[0]:.1f}', flush=True)
    r = [x/y for x, y in zip(w['ours'], w['plain'])]; rc = [x/y for x, y in zip(c['ours'], c['plain'])]
    print(f'  wall ratio per round: min {min(r):.2f}x  median {statistics.median(r):.2f}x  max {max(r):.2f}x   '
          f'cpu ratio: median {statistics.median(rc):.2f}x')
    return report(name, statistics.median(w['ours']), statistics.median(w['plain']), target)

class _Writes:
    "Count the manifest and restore script writes (persistlab's atomic writes of those two files)"
    def __enter__(self):
        self.n, self.orig = {}, storage.atomic_write
        def counted(f, *a, **kw):
            self.n[Path(f).name] = self.n.get(Path(f).name, 0) + 1; return self.orig(f, *a, **kw)
        storage.atomic_write = counted; return self
    def __exit__(self, *a): storage.atomic_write = self.orig
    def __str__(self): return f"manifest {self.n.get(storage.MANIFEST, 0)}, script {self.n.get(storage.SCRIPT, 0)}"

def entries(n, base):
    "ms per entry for `n` small folders: one `persist` call, one command each (and the last one alone), a fresh-home restore"
    b = Path(tempfile.mkdtemp(dir=base)); names = [f'.d{i}' for i in range(n)]
    def world(tag):
        home, st = b/f'home-{tag}', b/f'st-{tag}'
        for x in names: (home/x).mkdir(parents=True); (home/x/'f').write_text(x)
        return home, detect(env=dict(HOME=str(home), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(st)))
    home, pl = world('one')
    with _Writes() as w1: t1 = timed(lambda: persist(names, home=home, platform=pl))
    home2, pl2 = world('each')
    ts = [timed(lambda: persist(x, home=home2, platform=pl2)) for x in names]
    fresh = b/'fresh'; fresh.mkdir()
    plf = detect(env=dict(HOME=str(fresh), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(b/'st-one')))
    with _Writes() as w3: t3 = timed(lambda: restore(home=fresh, platform=plf))
    assert all((fresh/x).is_symlink() for x in names)
    shutil.rmtree(b)
    return t1/n, sum(ts)/n, statistics.median(ts[-5:]), t3/n, str(w1), str(w3)  # the Nth: the median of the last five, one command is noisy

def per_entry(base, sizes=(10, 100, 400)):
    print(f'{"entries":>7}  {"one call":>10}  {"one at a time":>13}  {"the Nth alone":>13}  {"restore":>10}   '
          f'writes in one call | in restore  (ms per entry; the Nth: ms for one command adding one path to about N, median of the last 5)')
    for n in sizes:
        a, e, last, r, w1, w3 = entries(n, base)
        print(f'{n:>7}  {a*1000:10.1f}  {e*1000:13.1f}  {last*1000:13.1f}  {r*1000:10.1f}   {w1} | {w3}')

if __name__ == '__main__':
    what = [a for a in sys.argv[1:] if not a.isdigit()] or ['tree', 'entries']
    sizes = tuple(int(a) for a in sys.argv[1:] if a.isdigit()) or (10, 100, 400)
    print(f'load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores')
    disk = tempfile.mkdtemp(prefix='plbench-'); shm = tempfile.mkdtemp(prefix='plbench-', dir='/dev/shm')
    try:
        if 'tree' in what:
            compare('same filesystem: persist vs mv + ln -s', disk, disk, 1.2)
        if 'tree' in what or 'cross' in what:
            compare('across filesystems: persist vs cp -a + rm -rf + ln -s', shm, disk, 1.0)
        if 'entries' in what: per_entry(disk, sizes)
    finally: shutil.rmtree(disk); shutil.rmtree(shm)
