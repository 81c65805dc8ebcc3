"""Replicas: a hosted platform as a new user finds it (how the platforms look at the start of a session). Needs root (mount namespaces).

A replica is a "VM" of one platform: a private mount namespace (`unshare -m --propagation private`) whose root is a
tmpfs of binds of this machine's top-level folders (`chroot`), with an empty `/root` (this machine's Python, which
lives under /root/.pyenv, is bound back), an empty `/run` (no `/run/sshd`), the platform's own folders (`/content`,
`/kaggle`, `/storage`, `/notebooks`, Deepnote's `/work`) made inside it, its variables, and a held process that
keeps it alive. Nothing outside it is created or changed: /tmp and the other folders are this machine's own (so
tmp_path works inside), but another replica's platform folders are never visible. What persists across VMs is a host
folder you own (Drive, /kaggle/working, Deepnote's /work, /storage): a fresh VM of the same platform is a new replica
with the same folder and a new empty home.

    def test_journey(replica):
        vm = replica('colab')                 # fresh Colab VM: HOME=/root (no ~/.ssh), cwd /content, Drive unmounted
        r = vm.run_cell('''
            !pip install -q persistlab
            %load_ext persistlab
            %persist --mount .local .ssh''')   # one cell in a new real IPython kernel inside the VM
        assert r.ok, r.out                     # r.out: all the cell printed; r.error: 'UsageError: ...' or ''
        r1, r2 = vm.run([cell1, cell2])        # cells in ONE kernel; every run()/run_cell() call is a new kernel
                                               # (so a second call is a kernel restart: same VM, files, processes)
        vm.sh('ls -la ~/.ssh').stdout          # a terminal on the VM (bash -c, HOME=/root); check=True by default
        vm.p('/root/.ssh/id_ed25519')          # a host Path to a file inside the VM (via /proc/PID/root)
        vm.drive                               # the host folder behind Drive (it holds MyDrive/)
        vm2 = replica('colab')                 # the next session: a new VM, a new empty home, the same Drive

Platforms and their persistent folders (keyword arguments; default: one folder per platform per test, so every
replica of that platform in a test shares it):
- `colab`: `drive=` appears at /content/drive only when `google.colab.drive.mount('/content/drive')` runs (a fake
  `google.colab` on PYTHONPATH bind-mounts it, as Colab's does); `google.colab.userdata.get` serves `secrets=`.
  `sshd=True`: a runtime made with SSH on (Colab's image has openssh-server since 2026-05 and starts its sshd when
  `COLAB_ENABLE_SSH=1`): the VM's own /etc/ssh (a private folder over the host's: `SSHD_CONFIG`, the image's host
  keys made fresh for each VM), `COLAB_ENABLE_SSH=1`, and that sshd started as the runtime starts, on 127.0.0.1
  (`vm.sshd_port`), before any kernel.
- `kaggle`: `working=` is /kaggle/working (cwd), `input=` is /kaggle/input, read-only (default: empty);
  a fake `kaggle_secrets.UserSecretsClient().get_secret` serves `secrets=`.
- `deepnote`: `work=` is /work (cwd). This machine's project lives under /work too: the replica sees the host's
  /work nowhere, and the code under test is reached through PYTHONPATH at its new place (`vm.code`).
- `paperspace`: `storage=` is /storage, `notebooks=` is /notebooks (cwd). The image's run script
  (`vm.runsh`) sources /storage/pre-run.sh with bash when the VM starts, before any kernel; its output is in
  `vm.boot`, and the environment it leaves is every kernel's. `boot=False` skips it.
- `vm`: a bare root VM (a rented GPU box): only the empty /root and /run, cwd /root.
The platform's own Python: `stack=` names a stack in tests/data/stacks (default: `colab` and `kaggle` replicas run theirs,
Python 3.13 and 3.12 with the image's pins; the others this machine's Python; `stack=None` forces this machine's). The
stack's packages are the VM's system site-packages (an overlay, so `!pip install` writes only into that VM); `vm.python`
is its interpreter. `checkout=False` leaves this worktree off PYTHONPATH (then persistlab is what pip installed).
Every VM: PYTHONPATH starts with this worktree (and the fakes), pip has no index and finds wheels in
`vm.wheelhouse` (a host folder: build or copy wheels there), `env=` adds or overrides variables, `secrets=` are
kept in a 0600 file (never in argv or the environment). `vm.close()` stops every process in the VM; the fixture
closes all VMs at the end of the test.
"""
import os, re, sys, json, time, signal, shutil, textwrap, subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROOT = shutil.which('chroot') or '/usr/sbin/chroot'  # in /usr/sbin, which a sudo-ing user's PATH may lack
PY = Path(sys.base_prefix)                    # this machine's Python (under /root/.pyenv here): bound back into each VM
PYEXE = PY/'bin'/f'python{sys.version_info.major}.{sys.version_info.minor}'  # Debian has no bin/python, pyenv and Debian both have this
# run from a venv (Debian's Python has no test packages of its own): the VM's system Python gets the venv's packages on
# PYTHONPATH and `python`/`pip` commands that run it, so `pip install --user` and ~/.local behave as on a platform image
_VENV_SITE = [p for p in sys.path if p.startswith(sys.prefix) and p.endswith('site-packages')] if sys.prefix != sys.base_prefix else []
PLATFORMS = 'colab', 'kaggle', 'deepnote', 'paperspace', 'vm'
STACKS = dict(colab='colab', kaggle='kaggle')  # the platforms whose replicas run their own Python stack (tests/data/stacks)
_CWD = dict(colab='/content', kaggle='/kaggle/working', deepnote='/work', paperspace='/notebooks', vm='/root')
_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'  # as on Colab: no ~/.local/bin
_ENV = dict(  # what each platform sets (a representative subset; none of persistlab's own variables)
    colab=dict(COLAB_RELEASE_TAG='release-colab_20251120-060000_RC00', COLAB_GPU='1', COLAB_JUPYTER_IP='172.28.0.12',
               COLAB_BACKEND_VERSION='next', COLAB_KERNEL_MANAGER_PROXY_PORT='6000', CLOUDSDK_CONFIG='/content/.config'),
    kaggle=dict(KAGGLE_KERNEL_RUN_TYPE='Interactive', KAGGLE_URL_BASE='https://www.kaggle.com',
                KAGGLE_DOCKER_IMAGE='gcr.io/kaggle-gpu-images/python', COLAB_GPU='1'),
    deepnote=dict(DEEPNOTE_PROJECT_ID='5f1c3a8e-0000-4000-8000-000000000000', DEEPNOTE_PROJECT_OWNER_ID='u-1'),
    paperspace=dict(PAPERSPACE_NOTEBOOK_REPO_ID='repo1', PAPERSPACE_FQDN='n1abc.clg07azjl.paperspacegradient.com',
                    PAPERSPACE_NOTEBOOK_ID='n1abc'),
    vm={})

FAKE_DRIVE = '''"A stand-in for Colab's google.colab.drive: Drive appears at the mountpoint only when mount() runs"
import os, subprocess
def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
    mountpoint = os.path.expanduser(str(mountpoint))
    if os.path.ismount(mountpoint) and not force_remount:
        print(f'Drive already mounted at {mountpoint}; to attempt to forcibly remount, call '
              f'drive.mount("{mountpoint}", force_remount=True).'); return
    if os.path.isdir(mountpoint) and os.listdir(mountpoint): raise ValueError('Mountpoint must not already contain files')
    os.makedirs(mountpoint, exist_ok=True)
    subprocess.run(['mount', '--bind', DRIVE, mountpoint], check=True)
    print(f'Mounted at {mountpoint}')
def flush_and_unmount(timeout_ms=24*60*60*1000):
    subprocess.run(['umount', '/content/drive'], check=True); print('Drive unmounted')
'''
FAKE_USERDATA = '''"A stand-in for Colab's google.colab.userdata (the Secrets panel)"
import json
class SecretNotFoundError(Exception): pass
class NotebookAccessError(Exception): pass
def get(key):
    with open(SECRETS) as f: d = json.load(f)
    if key not in d: raise SecretNotFoundError(f'Secret {key} does not exist.')
    return d[key]
'''
FAKE_KAGGLE = '''"A stand-in for Kaggle's kaggle_secrets (Add-ons > Secrets)"
import json
class BackendError(Exception): pass
class UserSecretsClient:
    def get_secret(self, label):
        with open(SECRETS) as f: d = json.load(f)
        if label not in d: raise BackendError(f'Unexpected response from the service. Response: {{"errors": ["No user secrets exist for kernel id 1 and label {label}"]}}')
        return d[label]
'''
# Colab's image adds "an sshd_config tuned for the runtime environment" (googlecolab/backend-info, 2026-05-22) that is
# not published: this one is Debian's default (an Include, no HostKey lines: the three default host keys, the default
# AuthorizedKeysFile), root by key only, on loopback (the /colab/ssh route is the runtime's only way in), no PAM
SSHD_CONFIG = '''Include /etc/ssh/sshd_config.d/*.conf
ListenAddress 127.0.0.1:{port}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
PrintMotd no
PrintLastLog no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
'''
RUN_SH = '''#!/bin/bash
# What Gradient's image does when a notebook starts, before Jupyter: source the user's /storage/pre-run.sh
if [ -f /storage/pre-run.sh ]; then source /storage/pre-run.sh; fi
cd /notebooks
exec "$@"
'''
_MARK = '\x1e@@replica-cell@@'
KERNEL = '''
import sys, json
from IPython.core.interactiveshell import InteractiveShell
cells = json.load(open(sys.argv[1]))
sh = InteractiveShell.instance(colors='NoColor')
res = []
for i, c in enumerate(cells):
    print('\\n' + MARK + str(i), flush=True); print(MARK + str(i), file=sys.stderr, flush=True)
    r = sh.run_cell(c, store_history=True)
    e = r.error_before_exec or r.error_in_exec
    res.append(dict(ok=bool(r.success), error='' if e is None else f'{type(e).__name__}: {e}'))
    sys.stdout.flush(); sys.stderr.flush()
    with open(sys.argv[2], 'w') as f: json.dump(res, f)
'''.replace('MARK', repr(_MARK))

@dataclass
class Cell:
    "What one cell did: `ok` (no exception), `error` ('UsageError: ...' or ''), `out` (its stdout and stderr)"
    source: str
    ok: bool
    error: str
    out: str
    def __repr__(self): return f'Cell(ok={self.ok}, error={self.error!r})\n{self.out}'

def _sh(script): return ['bash', '-c', 'set -eu\n' + script]

def _q(p): return "'" + str(p).replace("'", "'\\''") + "'"

class VM:
    "One replica VM (see the module docstring)"
    def __init__(self, platform, base, dirs, env=None, secrets=None, boot=True, timeout=60, stack='default', checkout=True, sshd=False):
        if platform not in PLATFORMS: raise ValueError(f'platform {platform!r}: one of {PLATFORMS}')
        if os.geteuid() != 0: raise RuntimeError('replicas need root (mount namespaces)')
        self.platform, self.base, self.timeout = platform, Path(base), timeout
        self.base.mkdir(parents=True)
        for k, v in dirs.items(): Path(v).mkdir(parents=True, exist_ok=True); setattr(self, k, Path(v))
        if platform == 'colab': (self.drive/'MyDrive').mkdir(exist_ok=True)  # every Drive has it
        self.wheelhouse = self.base/'wheelhouse'; self.wheelhouse.mkdir()
        sec = self.base/'secrets.json'
        fd = os.open(sec, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w') as f: json.dump(dict(secrets or {}), f)
        fake = self.base/'site'; fake.mkdir()
        if platform == 'colab':
            (fake/'google/colab').mkdir(parents=True); (fake/'google/__init__.py').write_text('')
            (fake/'google/colab/__init__.py').write_text('"A stand-in for Colab\'s google.colab (drive, userdata)"\n')
            (fake/'google/colab/drive.py').write_text(f'DRIVE = {str(self.drive)!r}\n' + FAKE_DRIVE)
            (fake/'google/colab/userdata.py').write_text(f'SECRETS = {str(sec)!r}\n' + FAKE_USERDATA)
        if platform == 'kaggle': (fake/'kaggle_secrets.py').write_text(f'SECRETS = {str(sec)!r}\n' + FAKE_KAGGLE)
        self.code = ROOT
        self.stack = STACKS.get(platform) if stack == 'default' else stack
        pyexe, pyhome, vsite = PYEXE, PY, _VENV_SITE
        if self.stack:
            from stacks import stack_python
            pyexe, img = stack_python(self.stack)  # the stack's interpreter, and a site-packages holding its pins
            pyhome = pyexe.parent.parent
            ver = f'{pyexe.name[len("python"):]}'
            purelib = pyhome/'lib'/f'python{ver}'/'site-packages'
            ov = self.base/'image-site'; (ov/'u').mkdir(parents=True); (ov/'w').mkdir()
            vsite = []
        self.python = pyexe
        R = self.base/'root'; R.mkdir()  # the VM's / : a tmpfs holding binds of the host's top-level folders
        setup = [f'R={_q(R)}', 'mount -t tmpfs -o mode=755 tmpfs "$R"']
        for n in sorted(os.listdir('/')):
            h = Path('/')/n
            if n in ('root', 'run', 'content', 'kaggle', 'storage', 'notebooks') or (n == 'work' and platform == 'deepnote'): continue
            if h.is_symlink(): setup.append(f'ln -s {_q(os.readlink(h))} "$R"/{_q(n)}')
            elif h.is_dir(): setup.append(f'mkdir "$R"/{_q(n)} && mount --{"rbind" if n in ("dev", "proc", "sys") else "bind"} {_q(h)} "$R"/{_q(n)}')
            elif h.is_file(): setup.append(f'touch "$R"/{_q(n)} && mount --bind {_q(h)} "$R"/{_q(n)}')
        setup += ['mkdir -m 700 "$R"/root && mkdir -m 755 "$R"/run',  # an empty home (sshd accepts its mode), no /run/sshd
                  f'mkdir -p "$R"{_q(pyhome)} && mount --bind {_q(pyhome)} "$R"{_q(pyhome)}',  # the VM's Python lives under /root
                  'cp /etc/skel/.bashrc /etc/skel/.profile "$R"/root/ 2>/dev/null || true',
                  'mkdir -p "$R"/root/.config "$R"/root/.cache "$R"/root/.local/share/jupyter/runtime']  # the image's Jupyter runs as root
        if self.stack:  # the image's packages are its system site-packages; the VM writes into its own upper layer
            setup.append(f'mount -t overlay overlay -o lowerdir={img},upperdir={ov/"u"},workdir={ov/"w"} "$R"{_q(purelib)}')
        self.sshd_port = None
        if sshd:
            if platform != 'colab': raise ValueError('sshd=True: a Colab runtime made with SSH on')
            import socket
            with socket.socket() as s: s.bind(('127.0.0.1', 0)); self.sshd_port = s.getsockname()[1]
            img = self.base/'image'; (img/'etc/ssh/sshd_config.d').mkdir(parents=True)
            subprocess.run(['ssh-keygen', '-q', '-A', '-f', str(img)], check=True, capture_output=True)  # this VM's host keys
            (img/'etc/ssh/sshd_config').write_text(SSHD_CONFIG.format(port=self.sshd_port))
            if Path('/etc/ssh/moduli').exists(): shutil.copy('/etc/ssh/moduli', img/'etc/ssh/moduli')
            setup.append(f'mount --bind {_q(img/"etc/ssh")} "$R"/etc/ssh')  # the VM's own /etc/ssh: the host's is never touched
            env = {'COLAB_ENABLE_SSH': '1', **(env or {})}
        if platform == 'colab':
            setup += ['mkdir -m 755 "$R"/content "$R"/content/sample_data',
                      'echo "This directory includes a few sample datasets to get you started." > "$R"/content/sample_data/README.md']
        elif platform == 'kaggle':
            setup += ['mkdir -p "$R"/kaggle/working "$R"/kaggle/input "$R"/kaggle/lib',
                      f'mount --bind {_q(self.working)} "$R"/kaggle/working',
                      (f'mount --bind {_q(self.input)} "$R"/kaggle/input && mount -o remount,bind,ro "$R"/kaggle/input'
                       if dirs.get('input') else 'mount -t tmpfs -o ro,mode=755 tmpfs "$R"/kaggle/input')]
        elif platform == 'deepnote':
            if ROOT.is_relative_to('/work'):  # the code under test, reached at a place of its own
                (self.base/'hostwork').mkdir(); self.code = self.base/'hostwork'/ROOT.relative_to('/work')
                setup.append(f'mount --bind /work "$R"{_q(self.base/"hostwork")}')
            setup += [f'mkdir "$R"/work && mount --bind {_q(self.work)} "$R"/work']
        elif platform == 'paperspace':
            setup += [f'mkdir "$R"/storage "$R"/notebooks', f'mount --bind {_q(self.storage)} "$R"/storage',
                      f'mount --bind {_q(self.notebooks)} "$R"/notebooks']
        pybin = f'{pyhome}/bin'
        if vsite or self.stack:
            shims = self.base/'pybin'; shims.mkdir()
            for n, cmd in (('python', ''), ('python3', ''), ('pip', ' -m pip'), ('pip3', ' -m pip'), ('jupyter', ' -m jupyter'), ('ipython', ' -m IPython')):
                (shims/n).write_text(f'#!/bin/sh\nexec {_q(pyexe)}{cmd} "$@"\n'); os.chmod(shims/n, 0o755)
            pybin = f'{shims}:{pybin}' if self.stack else f'{shims}:{sys.prefix}/bin:{pybin}'  # the shims first; then the venv's console scripts (jupyter-server ...)
        self.env = dict(PATH=f'{pybin}:{_PATH}', HOME='/root', USER='root', SHELL='/bin/bash', LANG='C.UTF-8', TERM='dumb',
                        PYTHONPATH=':'.join(map(str, [*([self.code] if checkout else []), fake, *vsite])), PIP_NO_INDEX='1', PIP_FIND_LINKS=str(self.wheelhouse),
                        PIP_DISABLE_PIP_VERSION_CHECK='1', PIP_ROOT_USER_ACTION='ignore',
                        **_ENV[platform])
        if vsite: self.env['PIP_BREAK_SYSTEM_PACKAGES'] = '1'  # a platform image's Python is not marked externally managed (PEP 668)
        self.env.update({k: str(v) for k, v in (env or {}).items()})
        self.cwd = _CWD[platform]
        self._holder = subprocess.Popen(['unshare', '-m', '--propagation', 'private', '--',
                                         *_sh('\n'.join(setup) + f'\nexec {_q(CHROOT)} "$R" /bin/sh -c "echo ready; exec cat >/dev/null"')],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=dict(PATH=os.environ['PATH'], LANG='C.UTF-8'), start_new_session=True)
        line = self._holder.stdout.readline()
        if line.strip() != 'ready':
            err = self._holder.stderr.read() if self._holder.poll() is not None else ''
            self.close(); raise RuntimeError(f'the {platform} replica did not start: {err.strip() or line}')
        self.pid = self._holder.pid
        self.ns = os.readlink(f'/proc/{self.pid}/ns/mnt')
        self.boot = None
        if self.sshd_port:  # the runtime starts the image's sshd (it daemonizes; close() stops it with the VM)
            self.exec(['sh', '-c', 'mkdir -p -m 0755 /run/sshd && /usr/sbin/sshd'])
            import socket
            for _ in range(100):
                try: socket.create_connection(('127.0.0.1', self.sshd_port), timeout=1).close(); break
                except OSError: time.sleep(0.1)
            else: self.close(); raise RuntimeError("the replica's sshd did not start")
        if platform == 'paperspace':
            self.runsh = self.base/'run.sh'; self.runsh.write_text(RUN_SH); self.runsh.chmod(0o755)
            if boot: self._boot()

    def _boot(self):
        "Gradient's start: run.sh sources /storage/pre-run.sh, then Jupyter (here: a dump of the env kernels get)"
        envf = self.base/'boot-env.json'
        r = self.exec(['bash', str(self.runsh), str(self.python), '-c',
                       f'import os, json; json.dump(dict(os.environ), open({str(envf)!r}, "w"))'], check=False)
        self.boot = r
        if envf.exists(): self.env = {k: v for k, v in json.loads(envf.read_text()).items() if k not in ('PWD', 'SHLVL', 'OLDPWD', '_')}

    def p(self, path) -> Path:
        "A host path for `path` inside the VM (through /proc/PID/root): read, write, stat from the test"
        return Path(f'/proc/{self.pid}/root')/str(path).lstrip('/')

    def exec(self, argv, check=True, timeout=None, input=None, env=None, cwd=None) -> subprocess.CompletedProcess:
        "Run `argv` inside the VM (as root, the VM's environment and cwd); stdout and stderr as text"
        e = {**self.env, **(env or {})}
        cmd = ['nsenter', '-t', str(self.pid), '-m', '-r', '--', 'sh', '-c', 'cd "$0" && exec "$@"', cwd or self.cwd, *map(str, argv)]
        p = subprocess.Popen(cmd, env=e, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try: out, err = p.communicate(input, timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL); out, err = p.communicate()
            raise AssertionError(f'{argv} timed out in the {self.platform} replica:\n{out}\n{err}') from None
        r = subprocess.CompletedProcess(argv, p.returncode, out, err)
        if check and r.returncode: raise AssertionError(f'{argv} failed ({r.returncode}) in the {self.platform} replica:\n{out}\n{err}')
        return r

    def sh(self, script, check=True, **kw) -> subprocess.CompletedProcess:
        "A shell command on the VM, as typed in its terminal"
        return self.exec(['bash', '-c', script], check=check, **kw)

    def run(self, cells, timeout=None) -> list:
        "Run `cells` (sources, as the user types them) in one new IPython kernel in the VM; one `Cell` each"
        cells = [textwrap.dedent('\n'.join(c) if isinstance(c, (list, tuple)) else c).strip() for c in cells]
        n = len(list(self.base.glob('kernel-*.json')))
        src, res = self.base/f'kernel-{n}.json', self.base/f'kernel-{n}.result'
        src.write_text(json.dumps(cells))
        r = self.exec([str(self.python), '-c', KERNEL, src, res], check=False, timeout=timeout or 300)
        got = json.loads(res.read_text()) if res.exists() else []
        outs, errs = r.stdout.split(_MARK)[1:], r.stderr.split(_MARK)[1:]
        cut = lambda s: s.split('\n', 1)[1] if '\n' in s else ''
        out = []
        for i, c in enumerate(cells):
            o = (cut(outs[i]) if i < len(outs) else '') + (cut(errs[i]) if i < len(errs) else '')
            if i < len(got): out.append(Cell(c, got[i]['ok'], got[i]['error'], o))
            else: out.append(Cell(c, False, f'the kernel died (exit {r.returncode})', o + r.stderr[-2000:]))
        return out

    def run_cell(self, cell, timeout=None) -> Cell:
        "Run one cell in a new kernel (a kernel restart when the VM already ran one)"
        return self.run([cell], timeout)[0]

    def processes(self) -> list:
        "Pids of every process in this VM (its mount namespace), the holder included"
        out = []
        for d in os.listdir('/proc'):
            if not d.isdigit(): continue
            try:
                if os.readlink(f'/proc/{d}/ns/mnt') == self.ns: out.append(int(d))
            except OSError: pass
        return out

    def close(self):
        "Stop every process in the VM (the mounts go with the namespace)"
        if getattr(self, '_holder', None) is None: return
        if getattr(self, 'ns', None):
            for pid in self.processes():
                if pid != self._holder.pid:
                    try: os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError: pass
        try: self._holder.stdin.close()
        except OSError: pass
        try: self._holder.wait(10)
        except subprocess.TimeoutExpired: self._holder.kill(); self._holder.wait()
        for f in (self._holder.stdout, self._holder.stderr):
            if f: f.close()
        self._holder = None

def _dirs(platform, base, kw):
    "The persistent folders of `platform`: given ones, else one per platform per test under `base`"
    names = dict(colab=['drive'], kaggle=['working', 'input'], deepnote=['work'], paperspace=['storage', 'notebooks'], vm=[])[platform]
    out = {}
    for n in names:
        if n in kw: out[n] = Path(kw.pop(n))
        elif n != 'input': out[n] = Path(base)/f'{platform}-{n}'
    return out

def replica_factory(tmp_path):
    "The `replica(platform, **folders, env=, secrets=, boot=)` fixture's body: yields the factory, closes every VM"
    if os.geteuid() != 0: raise RuntimeError('replicas need root (mount namespaces); run the tests as root')
    vms = []
    def replica(platform, **kw):
        dirs = _dirs(platform, tmp_path, kw)
        vm = VM(platform, tmp_path/f'vm{len(vms)}-{platform}', dirs, **kw)
        vms.append(vm); return vm
    try: yield replica
    finally:
        for vm in reversed(vms): vm.close()

def wheel(dest, name, version='1.0', x=42) -> Path:
    "Build a tiny pure-Python wheel `name` in `dest` (a module with `X = x` and a console script `name`), no index needed"
    import zipfile, hashlib, base64
    mod, dist = name.replace('-', '_'), f"{name.replace('-', '_')}-{version}"
    files = {f'{mod}/__init__.py': f'X = {x}\ndef main(): print("{name} {version} ran")\n',
             f'{dist}.dist-info/METADATA': f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n',
             f'{dist}.dist-info/WHEEL': 'Wheel-Version: 1.0\nGenerator: replicas\nRoot-Is-Purelib: true\nTag: py3-none-any\n',
             f'{dist}.dist-info/entry_points.txt': f'[console_scripts]\n{name} = {mod}:main\n'}
    h = lambda b: 'sha256=' + base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()
    record = ''.join(f'{k},{h(v.encode())},{len(v.encode())}\n' for k, v in files.items()) + f'{dist}.dist-info/RECORD,,\n'
    w = Path(dest)/f'{dist}-py3-none-any.whl'
    with zipfile.ZipFile(w, 'w') as z:
        for k, v in {**files, f'{dist}.dist-info/RECORD': record}.items(): z.writestr(k, v)
    return w

INSTALL_FROM_REPO = re.compile(r'^(!pip install -q) "persistlab @ git\+https://github\.com/persistlab/persistlab@v[\w.]+"$', re.M)

def doc_cell(notebook, must=None) -> str:
    """The first code cell of `nbs/<notebook>` (containing `must`), as the docs print it (nbdev directives dropped).
    Until the first release the docs install from the repository's tag; here that line asks for `persistlab` by name
    instead (no index in a VM: pip says so, and this checkout is on PYTHONPATH), so no test reaches for GitHub."""
    nb = json.loads((ROOT/'nbs'/notebook).read_text())
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'code' and (must is None or must in src):
            src = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()
            return INSTALL_FROM_REPO.sub(r'\1 persistlab', src)
    raise LookupError(f'no code cell in {notebook}' + (f' with {must!r}' if must else ''))
