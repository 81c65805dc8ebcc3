"""A fresh VM's first minute, persistlab vs by hand (issue 20), interleaved; needs root (it runs replicas, tests/replicas.py)

What it covers so far, plainly: the Paperspace replica only (the link strategy and the /storage/pre-run.sh hook), with a
small environment: K tiny wheels installed by `pip install --user` (each with a console script), an ed25519 key in `.ssh`
and a `.gitconfig`. Session 1 builds that and runs `%persist .local .ssh .gitconfig` in a real kernel; session 2 is a new VM
whose boot runs the hook, timed from the boot until the packages import, a console script runs, the key loads and git
has the name. By hand is what USERS.md describes: `pip install --user` again (from the same local wheels: no index,
so by hand is favoured) and `cp -a` of the key and .gitconfig kept in /storage. Not covered yet: the Colab replica,
~1 GB of real packages (torch, transformers), code-server with an extension, ssh logging in, parallel restore."""
import os, sys, time, shutil, tempfile, statistics
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tests'))
from replicas import replica_factory, wheel

K = 30
NAMES = [f'plb-pkg{i}' for i in range(K)]
CHECK = ('python -c "import ' + ', '.join(n.replace('-', '_') for n in NAMES) + '" && ~/.local/bin/plb-pkg0 >/dev/null'
         ' && ssh-keygen -y -f ~/.ssh/id_ed25519 >/dev/null && test "$(git config user.name)" = bench')
DAY = (f'pip install -q --user {" ".join(NAMES)} && mkdir -p -m 700 ~/.ssh && ssh-keygen -q -t ed25519 -N "" -f ~/.ssh/id_ed25519'
       ' && git config --global user.name bench')
HAND = f'pip install -q --user {" ".join(NAMES)} && cp -a /storage/keep/.ssh /storage/keep/.gitconfig ~/'

def timed(f):
    t = time.perf_counter(); f(); return time.perf_counter() - t

def main(rounds=3):
    tmp = Path(tempfile.mkdtemp(prefix='plbench-vm-'))
    gen = replica_factory(tmp); replica = next(gen)
    try:
        wh = tmp/'wheels'; wh.mkdir()
        for n in NAMES: wheel(wh, n)
        def vm(storage, boot):
            v = replica('paperspace', storage=tmp/storage, notebooks=tmp/'nb', boot=boot)
            for w in wh.iterdir(): shutil.copy(w, v.wheelhouse)
            return v
        day = vm('storage', True); day.sh(DAY)  # session 1: a day's work, then one cell
        c = day.run_cell('%load_ext persistlab\n%persist .local .ssh .gitconfig'); assert c.ok, c.out + c.error
        hand = vm('storage-hand', True); hand.sh(DAY)  # the by-hand user keeps copies in /storage/keep
        hand.sh('mkdir -p /storage/keep && cp -a ~/.ssh ~/.gitconfig /storage/keep/')
        ours, plain = [], []
        for _ in range(rounds):
            v = vm('storage-hand', True)
            plain.append(timed(lambda: (v.sh(HAND), v.sh(CHECK))))
            v = vm('storage', False)
            ours.append(timed(lambda: (v._boot(), v.sh(CHECK))))  # the image's run.sh sources pre-run.sh, as at a VM's start
            assert 'restore failed' not in (v.boot.stdout + v.boot.stderr), v.boot.stderr
        o, p = statistics.median(ours), statistics.median(plain)
        print(f'load average {os.getloadavg()[0]:.1f}; paperspace, {K} --user packages + key + .gitconfig, {rounds} rounds interleaved')
        print(f'fresh VM until usable: persistlab {o:.2f} s   by hand {p:.2f} s   persistlab is {p/o:.1f}x faster (target 5x, 1 GB, under 30 s)')
    finally:
        gen.close(); shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__': main()
