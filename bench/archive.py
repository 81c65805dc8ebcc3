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
    zstd = subprocess.run(['tar', '--zstd', '-cf', '/dev/null', '--files-from', '/dev/null'], capture_output=True).returncode == 0
    so, sp, ro, rp, zs, zr = [], [], [], [], [], []
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
        if zstd:  # the same tree through tar's zstd (level 3): what a zstd snapshot would cost and save
            z, f3 = base/f'plain{i}.tar.zst', base/f'f3-{i}'; f3.mkdir()
            zs.append(timed(lambda: subprocess.run(['tar', '--zstd', '-cf', str(z), '.local'], cwd=home, check=True)))
            zr.append(timed(lambda: subprocess.run(['tar', '--zstd', '-xpf', str(z), '-C', str(f3)], check=True)))
    report('save: persistlab vs tar -c (gzip -1)', statistics.median(so), statistics.median(sp), 1.2)
    report('restore: persistlab vs tar -x (gzip -1)', statistics.median(ro), statistics.median(rp), 1.2)
    print(f'tree {tree_bytes/1e6:.1f} MB in 20k files; snapshot {snap.stat().st_size/1e6:.1f} MB, plain tar.gz {plain.stat().st_size/1e6:.1f} MB')
    if zstd:
        print(f'zstd (tar --zstd, plain): save {statistics.median(zs)*1000:.0f} ms, restore {statistics.median(zr)*1000:.0f} ms, '
              f'{z.stat().st_size/1e6:.1f} MB; vs gzip -1 save {statistics.median(zs)/statistics.median(sp):.2f}x, '
              f'restore {statistics.median(zr)/statistics.median(rp):.2f}x, size {z.stat().st_size/plain.stat().st_size:.2f}x')
    else: print('zstd: tar --zstd does not work here (apt-get install zstd)')
    shutil.rmtree(base)
