"""The wheel route's install on a fresh Colab VM (issue 20) against the plain tool and against the floor of writing the files.

In the Colab replica (Python 3.13, its stack), session 1 installs the day's packages of `fresh_vm.py` (about 1.3 GB, wheels
cached in /opt/persistlab-bench) and keeps them with `%persist --packages`. Then, each in a new VM with the same Drive,
interleaved (who goes first alternates):
- persistlab: `restore_packages()`, what the guide's cell runs for the packages (uv unpacked from the wheelhouse where the
  image has none, the wheels' hashes checked, the compiled modules put back);
- uv: `uv pip install --no-index --no-deps` of the same wheel files from Drive, uv's cache in home as on a fresh VM;
- floor: the very files the install wrote (the VM's site-packages upper layer, taken once), extracted from a zstd tar:
  what writing them costs on this disk, whatever the installer.
Prints seconds per round and the medians' ratios. Needs root (replicas). `python bench/wheel_floor.py [ROUNDS]`"""
import os, sys, time, shutil, tempfile, statistics, subprocess
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: F401  (what every bench imports first: no marker in this host's /run)
import fresh_vm as F
from replicas import replica_factory

MOUNT = 'python -c "from google.colab import drive; drive.mount(\'/content/drive\')" >/dev/null'
WH = '/content/drive/MyDrive/persistlab/wheelhouse'
PURELIB = 'python -c "import sysconfig; print(sysconfig.get_paths()[\'purelib\'])"'

def clock(body) -> str:
    "A shell line running `body` and printing `SECONDS <wall>` (the host and the VM share a clock)"
    return f's=$(date +%s.%N); {body}; e=$(date +%s.%N); echo "SECONDS $(echo "$e - $s" | bc)"'

ARMS = dict(
    persistlab=f'set -e; pip install -q persistlab; {MOUNT}\n' + clock('python -c "from persistlab.packages import restore_packages; restore_packages(quiet=True)" >/dev/null'),
    uv=(f'set -e; {MOUNT}; d=$(mktemp -d); cd "$d"\n'
        f'python -c "import zipfile, glob; z = zipfile.ZipFile(glob.glob(\'{WH}/tools/uv-*.whl\')[0]); '
        'n = [x for x in z.namelist() if x.endswith(\'/scripts/uv\')][0]; open(\'uv\', \'wb\').write(z.read(n))"; chmod +x uv; cd /\n'
        f'W=$(python -c "import json; m = json.load(open(\'/content/drive/MyDrive/persistlab/persistlab.json\')); '
        f'print(\' \'.join(\'{WH}/\' + t + \'/\' + r[\'wheel\'] for t, s in m[\'packages\'][\'sets\'].items() for r in s[\'packages\'].values()))")\n'
        + clock('"$d"/uv pip install -q --python "$(which python)" --no-index --no-deps --break-system-packages $W') + '; rm -rf "$d"'),  # /tmp is the host's
    floor=f'set -e; {MOUNT}; P=$({PURELIB})\n' + clock('zstd -q -T0 -dc /content/drive/MyDrive/site.tar.zst | tar -x -C "$P"'),
)

def main(rounds=2):
    tmp = Path(tempfile.mkdtemp(prefix='plbench-floor-'))
    gen = replica_factory(tmp); replica = next(gen)
    try:
        tag, pkgs, imports = F.SETS['colab']; wh = F.wheels(tag, pkgs)
        drive = tmp/'drive'
        mk = lambda: replica('colab', stack='colab', env=dict(PIP_FIND_LINKS=str(wh)), drive=drive)
        day = mk()
        day.sh(f'pip install -q persistlab && pip install -q {" ".join(pkgs)} && python -c "import {imports}"', timeout=1200)
        c = day.run_cell('%load_ext persistlab\n%persist --mount\n%persist --packages', timeout=1200)
        assert c.ok, c.out + c.error
        day.close()
        times = {a: [] for a in ARMS}
        for i in range(rounds):
            order = list(ARMS) if i % 2 == 0 else list(reversed(ARMS))
            if not (drive/'MyDrive/site.tar.zst').exists(): order.remove('persistlab'); order.insert(0, 'persistlab')  # the floor's files come from it
            for arm in order:
                v = mk()
                r = v.sh(ARMS[arm], timeout=900, check=False)
                got = [l.split()[1] for l in r.stdout.splitlines() if l.startswith('SECONDS ')]
                if r.returncode or not got:
                    raise RuntimeError(f'{arm}: rc {r.returncode}: {(r.stdout + r.stderr)[-800:]}')
                times[arm].append(float(got[-1]))
                if arm == 'persistlab' and not (drive/'MyDrive/site.tar.zst').exists():  # what it wrote into the image's site-packages
                    subprocess.run(f"tar -C {v.base/'image-site'/'u'} -cf - . | zstd -q -T0 -3 -o {drive/'MyDrive/site.tar.zst'}",
                                   shell=True, check=True)
                v.close()
            print(f"round {i+1}: " + ', '.join(f'{a} {times[a][-1]:.1f} s' for a in order) + f' (load average {os.getloadavg()[0]:.1f})', flush=True)
        m = {a: statistics.median(t) for a, t in times.items()}
        print(f"\nmedians of {rounds} rounds (2 cores, shared; load average {os.getloadavg()[0]:.1f}): " + ', '.join(f'{a} {s:.1f} s' for a, s in m.items()))
        print(f"persistlab/uv {m['persistlab']/m['uv']:.2f}x   persistlab/floor {m['persistlab']/m['floor']:.2f}x   uv/floor {m['uv']/m['floor']:.2f}x"
              "   (floor: extracting the installed files themselves)")
    finally:
        gen.close(); shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__':
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
