"""Platform stacks (tests/data/stacks/*.txt): each platform's Python and the versions of what persistlab touches, as its
published manifest lists them. `make_env(stack, dest)` builds a fresh environment pinned to one (uv, wheels cached once
per test run), for the stack tests and for replicas that run the platform's own Python."""
import os, re, sys, time, shutil, subprocess
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).resolve().parent/'data'/'stacks'
NAMES = sorted(p.stem for p in DATA.glob('*.txt'))

@dataclass
class Stack:
    name: str
    python: str                              # `3.13` (a pyenv interpreter of that version) or an absolute path
    pins: dict = field(default_factory=dict)  # normalised name -> version, as the manifest lists them
    lines: list = field(default_factory=list)  # the `name==version` lines as written
    @property
    def pip(self): return self.pins.get('pip')

def norm(name): return re.sub(r'[-_.]+', '-', name).lower()

def read_stack(name) -> Stack:
    "The stack in tests/data/stacks/NAME.txt: `# python: X` in its header, then `name==version` lines"
    s = Stack(name, '')
    for l in (DATA/f'{name}.txt').read_text().splitlines():
        if (m := re.match(r'#\s*python:\s*(\S+)', l)): s.python = m.group(1)
        elif l.strip() and not l.startswith('#'):
            n, v = l.strip().split('==')
            s.pins[norm(n)] = v; s.lines.append(l.strip())
    assert s.python and s.pins, f'{name}.txt needs a "# python:" line and pins'
    return s

def _vkey(v): return tuple(int(x) for x in v.split('.'))

def pyenv_root():
    if os.environ.get('PYENV_ROOT'): return Path(os.environ['PYENV_ROOT'])
    try: return Path(subprocess.run(['pyenv', 'root'], capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError): return Path.home()/'.pyenv'

def interpreter(spec) -> Path|None:
    "An interpreter for `spec`: an absolute path as is, else pyenv's newest X.Y.Z for X.Y (compared as numbers: 3.9 < 3.13)"
    if spec.startswith('/'): return Path(spec) if os.access(spec, os.X_OK) else None
    vs = pyenv_root()/'versions'
    cands = [d for d in (vs.iterdir() if vs.is_dir() else []) if re.fullmatch(r'\d+\.\d+\.\d+', d.name)
             and d.name.startswith(spec + '.') and (d/'bin'/f'python{spec}').exists()]
    if not cands: return None
    return max(cands, key=lambda d: _vkey(d.name))/'bin'/f'python{spec}'

def caches(base) -> dict:
    "One pip and one uv cache for every stack of this test run: each wheel is downloaded once"
    base = Path(base); (base/'pip').mkdir(parents=True, exist_ok=True); (base/'uv').mkdir(exist_ok=True)
    return dict(PIP_CACHE_DIR=str(base/'pip'), UV_CACHE_DIR=str(base/'uv'))

def clean_env(**kw) -> dict:
    "This process's environment minus what would point a child at this checkout or another venv"
    e = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV', 'PYTHONNOUSERSITE')
         and not k.startswith(('UV_', 'PIP_CONSTRAINT'))}
    e.update(PIP_DISABLE_PIP_VERSION_CHECK='1', PIP_ROOT_USER_ACTION='ignore', PIP_NO_WARN_SCRIPT_LOCATION='1')
    return {**e, **{k: str(v) for k, v in kw.items()}}

def uv():
    return shutil.which('uv') or str(Path(sys.executable).parent/'uv')

def make_env(stack:Stack, dest, cache:dict) -> Path:
    "A fresh venv at `dest` on the stack's Python holding exactly its pins (and what they need); returns its python"
    py = interpreter(stack.python)
    if py is None: raise FileNotFoundError(f'no Python {stack.python} here (pyenv versions under {pyenv_root()}/versions)')
    dest = Path(dest); env = clean_env(**cache)
    subprocess.run([uv(), 'venv', '-q', '--python', str(py), str(dest)], check=True, env=env, capture_output=True)
    req = dest.parent/f'{stack.name}-pins.txt'; req.write_text('\n'.join(stack.lines) + '\n')
    r = subprocess.run([uv(), 'pip', 'install', '-q', '--python', str(dest/'bin/python'), '-r', str(req)],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f'the {stack.name} stack does not install: {r.stderr[-3000:]}'
    return dest/'bin/python'

def freeze(python) -> dict:
    "name -> version of everything installed for `python`, the installers included"
    r = subprocess.run([str(python), '-m', 'pip', 'list', '--format=freeze', '--disable-pip-version-check'],
                       capture_output=True, text=True, check=True, env=clean_env())
    return {norm(l.split('==')[0]): l.split('==')[1] for l in r.stdout.splitlines() if '==' in l}

def changed(before:dict, after:dict) -> dict:
    "What an install replaced or removed: name -> (before, after)"
    return {n: (v, after.get(n)) for n, v in before.items() if after.get(n) != v}

def site_packages(python) -> Path:
    r = subprocess.run([str(python), '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'], capture_output=True, text=True, check=True)
    return Path(r.stdout.strip())

_RUN = {}

def run_dir() -> Path:
    "This test run's own folder for stack caches and built stacks (removed when the run ends)"
    if 'dir' not in _RUN:
        import tempfile, atexit
        d = Path(tempfile.mkdtemp(prefix='persistlab-stacks-')); os.chmod(d, 0o755)
        atexit.register(shutil.rmtree, d, True); _RUN['dir'] = d
    return _RUN['dir']

def run_cache() -> dict: return caches(run_dir()/'cache')

def stack_python(name) -> tuple:
    "(the stack's base interpreter, a site-packages folder holding its pins), built once per test run, for replicas"
    if name not in _RUN:
        s = read_stack(name)
        py = make_env(s, run_dir()/'envs'/name, run_cache())
        site, t = site_packages(py), time.time() - 86400
        for d, dirs, files in os.walk(site):  # an image's packages were installed when it was built, before any VM started
            for n in dirs + files: os.utime(os.path.join(d, n), (t, t), follow_symlinks=False)
        os.utime(site, (t, t))
        _RUN[name] = (interpreter(s.python).resolve(), site)
    return _RUN[name]
