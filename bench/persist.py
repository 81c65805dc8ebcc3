"persist of a 20k-file .local vs the plain tools, same filesystem and across filesystems (/dev/shm -> disk)"
import os, sys, shutil, tempfile, statistics
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import pip_like_tree, timed, sh, report
from persistlab.platforms import detect
from persistlab.persist import persist

def one(base_home, base_storage, ours):
    home, st = Path(tempfile.mkdtemp(dir=base_home)), Path(tempfile.mkdtemp(dir=base_storage))
    pip_like_tree(home/'.local'); sh('sync')
    pl = detect(env=dict(HOME=str(home), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(st)))
    cross = os.stat(home).st_dev != os.stat(st).st_dev
    if ours: t = timed(lambda: persist('.local', home=home, platform=pl))
    elif cross: t = timed(lambda: (sh('cp', '-a', str(home/'.local'), str(st/'.local')), sh('rm', '-rf', str(home/'.local')),
                                   sh('ln', '-s', str(st/'.local'), str(home/'.local'))))
    else: t = timed(lambda: (sh('mv', str(home/'.local'), str(st/'.local')), sh('ln', '-s', str(st/'.local'), str(home/'.local'))))
    shutil.rmtree(home); shutil.rmtree(st)
    return t

def compare(name, a, b, n=3):
    ours, plain = [], []
    for _ in range(n): plain.append(one(a, b, False)); ours.append(one(a, b, True))  # interleaved: same conditions
    return report(name, statistics.median(ours), statistics.median(plain), 1.2)

if __name__ == '__main__':
    disk = tempfile.mkdtemp(prefix='plbench-'); shm = tempfile.mkdtemp(prefix='plbench-', dir='/dev/shm')
    try:
        compare('same filesystem: persist vs mv + ln -s', disk, disk)
        compare('across filesystems: persist vs cp -a + rm -rf + ln -s', shm, disk)
    finally: shutil.rmtree(disk); shutil.rmtree(shm)
