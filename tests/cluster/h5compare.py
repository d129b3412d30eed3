#!/usr/bin/python3
"""Compares the datasets of two HDF5 files (h5py): prints the largest absolute difference
per group and exits 0 if every compared dataset is within TOL (0: bitwise equal), 1 if not.
  h5compare.py A.h5 B.h5 [--tol 1e-4] [--groups model,ema,optimizer] [--attrs step]
Datasets present in one file only, or of another shape or dtype, fail the comparison."""
import argparse
import sys

import h5py
import numpy as np


def datasets(f, groups):
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and (not groups or name.split("/")[0] in groups):
            out[name] = obj
    f.visititems(visit)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tol", type=float, default=0.0)
    ap.add_argument("--groups", default="")
    ap.add_argument("--attrs", default="")
    o = ap.parse_args()
    groups = [g for g in o.groups.split(",") if g]
    with h5py.File(o.a, "r") as fa, h5py.File(o.b, "r") as fb:
        da, db = datasets(fa, groups), datasets(fb, groups)
        bad = sorted(set(da) ^ set(db))
        worst = {}
        for name in sorted(set(da) & set(db)):
            x, y = da[name][()], db[name][()]
            if x.shape != y.shape or x.dtype != y.dtype:
                bad.append(f"{name}: {x.shape} {x.dtype} vs {y.shape} {y.dtype}")
                continue
            if o.tol == 0:
                d = 0.0 if x.tobytes() == y.tobytes() else float("inf")
            else:
                d = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0
            g = name.split("/")[0]
            worst[g] = max(worst.get(g, 0.0), d)
            if not d <= o.tol:
                bad.append(f"{name}: max |a - b| = {d:g}")
        for a in [a for a in o.attrs.split(",") if a]:
            if fa.attrs.get(a) != fb.attrs.get(a):
                bad.append(f"attribute {a}: {fa.attrs.get(a)} vs {fb.attrs.get(a)}")
        print("  compared {} datasets; max |a - b| by group: {}".format(
            len(set(da) & set(db)), ", ".join(f"{g} {d:.3g}" for g, d in sorted(worst.items())) or "none"))
        for b in bad[:10]:
            print("  differs:", b)
        return 1 if bad or not da else 0


if __name__ == "__main__":
    sys.exit(main())
