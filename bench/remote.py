"Remote snapshots of a 20k-file .local to an S3 API server (moto, 127.0.0.1): persistlab's save/restore vs `tar | zstd` + boto3"
import os, sys, json, time, shutil, signal, tempfile, statistics, subprocess
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import pip_like_tree, timed, report

def moto(base):
    "A moto S3 server on a free port, and the environment clients need"
    from persistlab.procs import free_port, port_open
    port = free_port()
    p = subprocess.Popen([shutil.which('moto_server'), '-H', '127.0.0.1', '-p', str(port)], stdout=open(base/'moto.log', 'w'),
                         stderr=subprocess.STDOUT, start_new_session=True)
    while not port_open(port): time.sleep(0.05)
    env = dict(AWS_ENDPOINT_URL=f'http://127.0.0.1:{port}', AWS_DEFAULT_REGION='us-east-1',
               AWS_ACCESS_KEY_ID='bench', AWS_SECRET_ACCESS_KEY='bench')
    os.environ.update(env)
    return p

if __name__ == '__main__':
    base = Path(tempfile.mkdtemp(prefix='plbench-remote-')); home = base/'home'
    os.environ['PERSISTLAB_RUN'] = str(base/'run')
    pip_like_tree(home/'.local', large_mb=4)
    tree_bytes = sum(f.stat().st_size for f in (home/'.local').rglob('*') if f.is_file() and not f.is_symlink())
    server = moto(base)
    try:
        import boto3
        s3 = boto3.client('s3'); s3.create_bucket(Bucket='bench')
        from persistlab.remote import remote_persist, remote_restore
        import s3fs  # imported once, as boto3 is (each side makes its client inside the timed part)
        prog, ext = ('zstd -1 -T0 -q', '.tar.zst') if shutil.which('zstd') else ('gzip -1', '.tar.gz')  # as persistlab's snapshots
        so, sp, ro, rp = [], [], [], []
        for i in range(3):
            url = f's3://bench/ours{i}'
            plain = base/f'plain{i}{ext}'
            def plain_save():  # what a user's script does: tar | zstd, then a client uploads the one file
                subprocess.run(f"tar -cf - .local | {prog} > {plain}", shell=True, cwd=home, check=True)
                boto3.client('s3').upload_file(str(plain), 'bench', f'plain{i}/local{ext}')
            sp.append(timed(plain_save))
            so.append(timed(lambda: remote_persist(['.local'], url, home)))
            f1, f2 = base/f'f1-{i}', base/f'f2-{i}'; f1.mkdir(); f2.mkdir()
            def plain_restore():
                got = base/f'got{i}{ext}'
                boto3.client('s3').download_file('bench', f'plain{i}/local{ext}', str(got))
                subprocess.run(['tar', '-xpf', str(got), '-C', str(f1)], check=True)
            rp.append(timed(plain_restore))
            os.environ['PERSISTLAB_RUN'] = str(base/f'run-{i}')  # a new VM each round
            ro.append(timed(lambda: remote_restore(url, f2)))
            shutil.rmtree(f1); shutil.rmtree(f2)
        print(f'tree {tree_bytes/1e6:.1f} MB in 20k files; snapshot {plain.stat().st_size/1e6:.1f} MB ({prog}); server: moto on 127.0.0.1')
        report(f'save: persistlab vs tar | {prog.split()[0]} + boto3 upload', statistics.median(so), statistics.median(sp), 1.1)
        report(f'restore: persistlab vs boto3 download + tar -x', statistics.median(ro), statistics.median(rp), 1.1)
        report('save + restore', statistics.median(so) + statistics.median(ro), statistics.median(sp) + statistics.median(rp), 1.1)
    finally:
        os.killpg(server.pid, signal.SIGTERM); server.wait()
        shutil.rmtree(base)
