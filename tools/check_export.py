"Check that drnb/ is exactly what `nbdev-export` makes of the notebooks; name the notebook of any module that differs."
import re, shutil, subprocess, sys, tempfile
from pathlib import Path

root = Path(__file__).resolve().parent.parent
lib = root/'drnb'

def snapshot(d): return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob('*.py')) if '__pycache__' not in p.parts}

def source_nb(text:bytes):
    m = re.search(rb'File to edit: (\S+\.ipynb)', text)
    return m.group(1).decode() if m else 'an unknown notebook'

def main():
    before = snapshot(lib)
    with tempfile.TemporaryDirectory() as tmp:
        keep = Path(tmp)/'drnb'; shutil.copytree(lib, keep)
        r = subprocess.run([str(Path(sys.executable).parent/'nbdev-export')], cwd=root, capture_output=True, text=True)
        after = snapshot(lib)
        shutil.rmtree(lib); shutil.copytree(keep, lib)  # leave the tree as it was: this is a check, not a fix
    if r.returncode: sys.exit(f"nbdev-export failed:\n{r.stdout}\n{r.stderr}")
    diff = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k) and k != '_modidx.py')
    if not diff and before.get('_modidx.py') == after.get('_modidx.py'):
        print(f"check_export: drnb/ matches the notebooks ({len(before)} modules)"); return
    for k in diff:
        what = 'missing from drnb/' if k not in before else 'not exported by any notebook' if k not in after else 'differs from its notebook'
        print(f"check_export: drnb/{k} {what}: edit {source_nb(after.get(k) or before.get(k)).replace('../', '')} and run nbdev-export")
    if not diff: print("check_export: drnb/_modidx.py is stale: run nbdev-export")
    sys.exit(1)

if __name__ == '__main__': main()
