"Restoring 10 persisted paths in a fresh home: the generated script vs a hand-written `ln -s` script"
import os, sys, shutil, tempfile, statistics, subprocess
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import timed, report
from persistlab.platforms import detect
from persistlab.persist import persist
from persistlab.storage import SCRIPT

if __name__ == '__main__':
    base = Path(tempfile.mkdtemp(prefix='plbench-')); home, st = base/'home', base/'storage'
    names = [f'.d{i}' for i in range(10)]
    for n in names: (home/n).mkdir(parents=True); (home/n/'f').write_text(n)
    persist(names, home=home, platform=detect(env=dict(HOME=str(home), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(st))))
    hand = base/'hand.sh'
    hand.write_text('#!/bin/sh\ncd "$HOME"\n' + ''.join(f'rm -rf {n}; ln -s {st}/{n} {n}\n' for n in names))
    def run(script):
        fresh = Path(tempfile.mkdtemp(dir=base))
        t = timed(lambda: subprocess.run(['sh', str(script)], env=dict(HOME=str(fresh), PATH='/usr/bin:/bin'), check=True, stdout=subprocess.DEVNULL))
        shutil.rmtree(fresh); return t
    ours, plain = [], []
    for _ in range(30): plain.append(run(hand)); ours.append(run(st/SCRIPT))
    o, p = statistics.median(ours), statistics.median(plain)
    report('restore 10 entries: generated script vs ln -s script', o, p, 1.5)
    print(f'{"":<48} generated script under 50 ms: {"yes" if o < 0.05 else "NO"}')
    shutil.rmtree(base)
