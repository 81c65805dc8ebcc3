import os, sys, stat, time, socket, subprocess, shutil, hashlib
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0

RUNTIME = 'share/jupyter/runtime'  # a live Jupyter's files, kept on the machine by design: compared separately

def snapshot(p) -> dict:
    "Relative path -> (type, mode, sha256 or link target), following nothing; for exact tree comparisons"
    p = Path(p); out = {}
    for root, dirs, files in os.walk(p):
        for n in dirs + files:
            q = Path(root)/n; st = q.lstat(); r = str(q.relative_to(p))
            if r == RUNTIME or r.startswith(RUNTIME + '/'): continue
            if stat.S_ISLNK(st.st_mode): out[r] = ('l', os.readlink(q))
            elif stat.S_ISDIR(st.st_mode): out[r] = ('d', stat.S_IMODE(st.st_mode))
            else: out[r] = ('f', stat.S_IMODE(st.st_mode), hashlib.sha256(q.read_bytes()).hexdigest())
    return out

def make_tree(p, n_files=50, big=0):
    "A pip-like .local: packages with many small files, a script with exec bits, a symlink, odd names"
    p = Path(p)
    site = p/'lib/python3.11/site-packages'
    for i in range(n_files):
        d = site/f'pkg{i % 40}'/f'sub{i % 7}'
        d.mkdir(parents=True, exist_ok=True)
        (d/f'mod_{i}.py').write_text(f'x = {i}\n' * (1 + i % 5))
    (p/'bin').mkdir(parents=True, exist_ok=True)
    (p/'bin/tool').write_text('#!/bin/sh\necho tool\n'); os.chmod(p/'bin/tool', 0o755)
    os.symlink('tool', p/'bin/tool-link')
    (p/'share/odd names/ünï cödé').mkdir(parents=True)
    (p/'share/odd names/ünï cödé/a file with spaces.txt').write_text('spaces\n')
    (p/'share/empty').mkdir()
    (p/RUNTIME).mkdir(parents=True); (p/RUNTIME/'kernel-1.json').write_text('{}')
    for i in range(big): (p/f'share/big{i}.bin').write_bytes(os.urandom(1 << 20))
    return p

class Sandbox:
    def __init__(self, base):
        self.base = Path(base)
        self.home, self.storage = self.base/'home', self.base/'storage'
        self.home.mkdir(parents=True); self.storage.mkdir(parents=True)
    def env(self, home=None, **kw):
        "A hermetic environment for a subprocess"
        h = Path(home or self.home)
        e = dict(PATH=os.environ['PATH'], HOME=str(h), LANG='C.UTF-8', PERSISTLAB_PLATFORM='local',
                 PERSISTLAB_STORAGE=str(self.storage), XDG_CONFIG_HOME=str(h/'.config'),
                 XDG_DATA_HOME=str(h/'.local/share'), XDG_CACHE_HOME=str(self.base/'cache'), TMPDIR=str(self.base/'tmp'),
                 PERSISTLAB_RUN=str(self.base/'run'))  # the sandbox is one machine: its restore-once markers are its own
        if os.environ.get('PYTHONPATH'): e['PYTHONPATH'] = os.environ['PYTHONPATH']  # a checkout under test, not an installed copy
        (self.base/'tmp').mkdir(exist_ok=True)
        e.update({k: str(v) for k, v in kw.items()})
        return e
    def run(self, *cmd, home=None, check=True, timeout=120, **kw):
        r = subprocess.run(list(map(str, cmd)), env=self.env(home, **kw), capture_output=True, text=True, timeout=timeout)
        if check and r.returncode: raise AssertionError(f'{cmd} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}')
        return r
    def py(self, code, home=None, check=True, **kw):
        return self.run(sys.executable, '-c', code, home=home, check=check, **kw)

@pytest.fixture
def sb(tmp_path): return Sandbox(tmp_path)

@pytest.fixture(autouse=True)
def _own_run_dir(tmp_path, monkeypatch):
    "Every test is its own machine: archive's restore-once markers go to its tmp dir, not this machine's /run"
    monkeypatch.setenv('PERSISTLAB_RUN', str(tmp_path/'run'))

@pytest.fixture
def shm_dir(tmp_path):
    "A directory on another filesystem than tmp_path (tmpfs), for cross-filesystem moves"
    base = Path('/dev/shm')
    if not (base.is_dir() and os.access(base, os.W_OK)): pytest.skip('needs a writable /dev/shm (tmpfs) for a second filesystem')
    import tempfile
    d = Path(tempfile.mkdtemp(dir=base, prefix='persistlab-test-'))
    if os.stat(d).st_dev == os.stat(tmp_path).st_dev: pytest.skip('/dev/shm is on the same filesystem as the temp dir')
    yield d
    shutil.rmtree(d, ignore_errors=True)

@pytest.fixture
def tmpfs(tmp_path):
    "Mount a small tmpfs (root only), unmounted afterwards"
    if not IS_ROOT: pytest.skip('mounting a tmpfs (full or read-only storage) needs root')
    mounts = []
    def mount(name, size='1m'):
        d = tmp_path/name; d.mkdir()
        r = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(d)], capture_output=True, text=True)
        if r.returncode: pytest.skip(f'cannot mount tmpfs here: {r.stderr.strip()}')
        mounts.append(d); return d
    yield mount
    for d in reversed(mounts): subprocess.run(['umount', '-l', str(d)])

SSHD = shutil.which('sshd') or '/usr/sbin/sshd'

def start_sshd(d, force_command:str|None, authorized:str='', timeout=10):
    "A real OpenSSH sshd on 127.0.0.1 (a stand-in server for tests and benches); returns (Popen, port, host key pub, client key)"
    # force_command=None: a plain server, as a VPS is: the user's real shell, no banner
    d = Path(d); d.mkdir(parents=True, exist_ok=True)
    for k in ('host', 'client'):
        if not (d/k).exists(): subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(d/k)], check=True)
    (d/'ak').write_text(authorized + (d/'client.pub').read_text())
    if force_command is not None: (d/'cmd.sh').write_text(force_command + '\n')
    from persistlab.procs import free_port
    port = free_port()
    (d/'cfg').write_text('\n'.join([f'ListenAddress 127.0.0.1:{port}', f'HostKey {d}/host', f'PidFile {d}/pid',
        f'AuthorizedKeysFile {d}/ak', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no',
        'PermitRootLogin prohibit-password', 'UsePAM no', 'StrictModes no', 'AllowTcpForwarding yes', 'GatewayPorts no',
        *([f'ForceCommand sh {d}/cmd.sh'] if force_command is not None else ['PrintMotd no', 'PrintLastLog no', 'Subsystem sftp internal-sftp'])]) + '\n')
    if os.geteuid() == 0: os.makedirs('/run/sshd', mode=0o755, exist_ok=True)  # a root sshd's privilege-separation dir
    p = subprocess.Popen([SSHD, '-D', '-e', '-f', str(d/'cfg')], stderr=open(d/'log', 'w'), start_new_session=True)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=0.2): return p, port, (d/'host.pub').read_text(), d/'client'
        except OSError: time.sleep(0.05)
    p.kill(); raise AssertionError('the stand-in sshd did not start: ' + (d/'log').read_text())

def wait_for(f, timeout=20, every=0.1):
    "Poll `f` until it gives something truthy (bounded: a test never hangs); returns that or None"
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if (v := f()): return v
        time.sleep(every)
    return None

WAIT_FOR_CLIENT = 'while kill -0 $PPID 2>/dev/null; do sleep 1; done'

@pytest.fixture
def replica(tmp_path):
    "Platform replicas as a new user finds them (root; mount namespaces): `vm = replica('colab')`, see tests/replicas.py"
    from replicas import replica_factory
    yield from replica_factory(tmp_path)
