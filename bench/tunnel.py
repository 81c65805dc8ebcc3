"Time from `start()` to URL through a localhost.run stand-in (real OpenSSH sshd) vs the raw `ssh -R` command to it"
import os, sys, time, shutil, getpass, tempfile, statistics, subprocess
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import report
sys.path.insert(0, str(Path(__file__).parent.parent/'tests'))
from conftest import start_sshd
from persistlab import procs, tunnel as T

LINE = 'h=$(od -An -N6 -tx1 /dev/urandom | tr -d " \\n"); echo "$h.lhr.life tunneled with tls termination, https://$h.lhr.life"; while kill -0 $PPID 2>/dev/null; do sleep 1; done'

if __name__ == '__main__':
    d = Path(tempfile.mkdtemp(prefix='plbench-')); os.environ['PERSISTLAB_RUNTIME'] = str(d/'run')
    sshd, port, _, key = start_sshd(d/'standin', LINE)
    web = procs.free_port()
    def ours():
        t = T.SSHTunnel(web, '127.0.0.1', port, getpass.getuser(), '0', T.SSH_PROVIDERS['localhost.run'][4], key)
        t0 = time.perf_counter(); t.start(); dt = time.perf_counter() - t0; t.stop(); return dt
    def plain():
        argv = ['ssh', '-T', '-i', str(key), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
                '-p', str(port), '-R', f'0:localhost:{web}', f'{getpass.getuser()}@127.0.0.1']
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in p.stdout:
            if 'tunneled with tls termination' in line: break
        dt = time.perf_counter() - t0; p.kill(); p.wait(); return dt
    a, b = [], []
    for _ in range(10): b.append(plain()); a.append(ours())
    report('tunnel start to URL: persistlab vs raw ssh -R', statistics.median(a), statistics.median(b), 1.2)
    procs.stop_all(); sshd.terminate(); sshd.wait(); shutil.rmtree(d)  # the supervisor too
