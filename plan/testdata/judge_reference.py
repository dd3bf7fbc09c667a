"""Reference values for plan/src/judge.rs, computed once with SciPy.

Run: python3 judge_reference.py > judge_reference.json (needs numpy and scipy;
the Rust tests read only the JSON). Samples are drawn with a fixed seed and
rounded, so they contain ties, and are stored with the results.
"""
import json

import numpy as np
import scipy
from scipy import stats

rng = np.random.default_rng(20260115)


def sample(kind, n, **kw):
    if kind == "normal":
        return [round(float(v), 1) for v in rng.normal(kw["mean"], kw["sd"], n)]
    if kind == "poisson":
        return [float(v) for v in rng.poisson(kw["lam"], n)]
    raise ValueError(kind)


cases = {
    "same": (sample("normal", 40, mean=100, sd=10), sample("normal", 40, mean=100, sd=10)),
    "shifted": (sample("normal", 40, mean=115, sd=10), sample("normal", 40, mean=100, sd=10)),
    "few": (sample("normal", 5, mean=130, sd=10), sample("normal", 30, mean=100, sd=10)),
    "wider": (
        sample("normal", 60, mean=100, sd=10 * 3 ** 0.5),
        sample("normal", 60, mean=100, sd=10),
    ),
    "sparse_counts": (sample("poisson", 50, lam=0.8), sample("poisson", 50, lam=0.3)),
    "unequal": (sample("normal", 13, mean=98, sd=4), sample("normal", 27, mean=101, sd=7)),
}

out = {"scipy": scipy.__version__, "cases": []}
for name, (canary, baseline) in cases.items():
    case = {"name": name, "canary": canary, "baseline": baseline, "mannwhitneyu": {}}
    for alternative in ["two-sided", "greater", "less"]:
        r = stats.mannwhitneyu(canary, baseline, alternative=alternative, method="asymptotic")
        case["mannwhitneyu"][alternative] = {"statistic": float(r.statistic), "pvalue": float(r.pvalue)}
    lev = stats.levene(canary, baseline, center="median")
    case["brown_forsythe"] = {"statistic": float(lev.statistic), "pvalue": float(lev.pvalue)}
    case["variance"] = {
        "canary": float(np.var(canary, ddof=1)),
        "baseline": float(np.var(baseline, ddof=1)),
    }
    out["cases"].append(case)

print(json.dumps(out, indent=1))
