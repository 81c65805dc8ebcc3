"`%load_ext persistlab` in a fresh IPython process vs a bare IPython start, interleaved: the ratio and the added milliseconds"
import os, sys, subprocess, statistics, tempfile, resource
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))

BARE = "from IPython.core.interactiveshell import InteractiveShell; ip = InteractiveShell.instance()"
OURS = BARE + "; ip.run_line_magic('load_ext', 'persistlab'); assert 'persist' in ip.magics_manager.magics['line']"
# what the load must not import (the engines wait for the first magic; archive platforms import theirs at load)
LAZY = OURS + ("; import sys; heavy = [m for m in ('persistlab.persist', 'persistlab.archive', 'persistlab.procs', 'ipywidgets', "
               "'requests', 'tqdm') if m in sys.modules]; assert not heavy, heavy")

if __name__ == '__main__':
    home = tempfile.mkdtemp()  # a local platform with nothing persisted: what a first `%load_ext` sees
    env = {**os.environ, 'HOME': home, 'PERSISTLAB_PLATFORM': 'local', 'PERSISTLAB_RUN': str(Path(home)/'run'), 'PYTHONPATH': str(Path(__file__).parent.parent)}
    def run(code):
        "CPU seconds (user + system) the child used: steadier than wall time on a shared machine"
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, '-c', code], check=True, env=env)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    import compileall  # pip compiles a package's bytecode when it installs it; PYTHONDONTWRITEBYTECODE (CI) would not
    compileall.compile_dir(str(Path(__file__).parent.parent/'persistlab'), quiet=1)
    run(LAZY); run(BARE)  # warm the file cache, and check nothing heavy is imported
    bare, ours = [], []
    for _ in range(int(os.environ.get('N', 15))): bare.append(run(BARE)); ours.append(run(OURS))
    b, o = statistics.median(bare), statistics.median(ours)
    print(f'CPU time (median of {len(bare)}): bare IPython {b*1000:.0f} ms, with %load_ext persistlab {o*1000:.0f} ms: ratio {o/b:.3f}x, '
          f'{1000*(o-b):+.1f} ms added (target: under 15 ms)')
