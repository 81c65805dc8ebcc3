"Warm start of code-server (binary cached): persistlab's start to /healthz vs starting the same binary by hand"
import os, sys, time, shutil, tempfile, statistics, subprocess, requests
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import report
from persistlab import procs, codeserver as C
from persistlab.platforms import detect

CS = os.environ.get('PERSISTLAB_TEST_CODE_SERVER', '/opt/persistlab-test/code-server/node_modules/.bin/code-server')

def gone(pgid, timeout=10):
    "Wait until the whole process group (code-server's file watcher too) has exited, so runs do not overlap"
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        try: os.killpg(pgid, 0)
        except ProcessLookupError: return
        time.sleep(0.05)

def healthz(port):
    try: return requests.get(f'http://127.0.0.1:{port}/healthz', timeout=1).status_code == 200
    except requests.RequestException: return False

if __name__ == '__main__':
    d = Path(tempfile.mkdtemp(prefix='plbench-')); (d/'home').mkdir(); (d/'st').mkdir()
    os.environ.update(PERSISTLAB_CODE_SERVER=CS, PERSISTLAB_RUNTIME=str(d/'run'), HOME=str(d/'home'))
    pl = detect(env=dict(HOME=str(d/'home'), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(d/'st')))
    def ours():
        t0 = time.perf_counter(); C.start_code_server(d, provider='none', platform=pl); dt = time.perf_counter() - t0
        C.stop_code_server(); return dt
    def plain():
        port = procs.free_port()
        t0 = time.perf_counter()
        p = subprocess.Popen([CS, '--auth', 'password', '--bind-addr', f'127.0.0.1:{port}', '--disable-telemetry', '--disable-update-check',
                              '--user-data-dir', str(d/'ud'), '--extensions-dir', str(d/'ext'), str(d)],
                             env={**os.environ, 'PASSWORD': 'x' * 24}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        while not healthz(port): time.sleep(0.05)
        dt = time.perf_counter() - t0
        os.killpg(p.pid, 15); p.wait(); gone(p.pid); return dt
    ours(); plain()  # warm the file cache
    a, b = [], []
    for i in range(9):  # alternate the order: neither always runs right after the other
        if i % 2: b.append(plain()); a.append(ours())
        else: a.append(ours()); b.append(plain())
    report('code-server warm start to /healthz: persistlab vs by hand', statistics.median(a), statistics.median(b), 1.1)
    shutil.rmtree(d)
