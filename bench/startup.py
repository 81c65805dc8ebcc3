"`%load_ext persistlab` in a fresh IPython process vs a bare IPython start: the added milliseconds"
import sys, subprocess, statistics
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import timed

BARE = "from IPython.core.interactiveshell import InteractiveShell; ip = InteractiveShell.instance()"
OURS = BARE + "; ip.run_line_magic('load_ext', 'persistlab'); assert 'persist' in ip.magics_manager.magics['line']"

if __name__ == '__main__':
    run = lambda code: timed(lambda: subprocess.run([sys.executable, '-c', code], check=True))
    run(OURS)  # warm the file cache
    bare, ours = [], []
    for _ in range(15): bare.append(run(BARE)); ours.append(run(OURS))
    b, o = statistics.median(bare), statistics.median(ours)
    print(f'bare IPython {b*1000:.0f} ms, with %load_ext persistlab {o*1000:.0f} ms: {1000*(o-b):+.1f} ms added (target under 50 ms)')
