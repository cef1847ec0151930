"Committed benchmark figures were taken on a quiet machine: every bench_cpu.csv records the 1-minute load, below 1.5."
from pathlib import Path
import pandas as pd, pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHES = sorted((ROOT/'nbs'/'results').glob('*/bench_cpu.csv'))

def test_there_are_benchmarks(): assert len(BENCHES) >= 5, BENCHES

@pytest.mark.parametrize('path', BENCHES, ids=lambda p: p.parent.name)
def test_every_benchmark_records_a_quiet_load(path):
    df = pd.read_csv(path)
    load = [c for c in df.columns if c.startswith('load')]
    assert load, f"{path}: no load column"
    assert df[load[0]].notna().all() and (df[load[0]] < 1.5).all(), f"{path}: load {df[load[0]].max()} (figures taken under load are wrong)"
