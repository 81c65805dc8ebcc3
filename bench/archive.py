"Archive snapshots of a 20k-file .local: persistlab's save/restore vs plain `tar` with the same compression"
import os, sys, shutil, tempfile, statistics, subprocess
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import pip_like_tree, timed, report
from persistlab.platforms import detect
from persistlab.persist import restore
from persistlab.archive import archive_persist
from persistlab.storage import SNAPDIR

if __name__ == '__main__':
    base = Path(tempfile.mkdtemp(prefix='plbench-')); home = base/'home'
    pip_like_tree(home/'.local', large_mb=4)
    tree_bytes = sum(f.stat().st_size for f in (home/'.local').rglob('*') if f.is_file() and not f.is_symlink())
    so, sp, ro, rp = [], [], [], []
    for i in range(3):
        st = base/f'st{i}'; st.mkdir()
        pl = detect(env=dict(HOME=str(home), PERSISTLAB_PLATFORM='colab', PERSISTLAB_STORAGE=str(st)))
        plain = base/f'plain{i}.tar.gz'
        sp.append(timed(lambda: subprocess.run(['tar', '--use-compress-program', 'gzip -1', '-cf', str(plain), '.local'], cwd=home, check=True)))
        so.append(timed(lambda: archive_persist('.local', home=home, platform=pl)))
        f1, f2 = base/f'f1-{i}', base/f'f2-{i}'; f1.mkdir(); f2.mkdir()
        rp.append(timed(lambda: subprocess.run(['tar', '--use-compress-program', 'gzip -1', '-xpf', str(plain), '-C', str(f1)], check=True)))
        ro.append(timed(lambda: restore(home=f2, platform=pl)))
        snap = next((st/SNAPDIR).iterdir())
    report('save: persistlab vs tar -c (gzip -1)', statistics.median(so), statistics.median(sp), 1.2)
    report('restore: persistlab vs tar -x (gzip -1)', statistics.median(ro), statistics.median(rp), 1.2)
    print(f'tree {tree_bytes/1e6:.1f} MB in 20k files; snapshot {snap.stat().st_size/1e6:.1f} MB, plain tar.gz {plain.stat().st_size/1e6:.1f} MB')
    shutil.rmtree(base)
