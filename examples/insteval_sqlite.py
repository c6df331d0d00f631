#!/usr/bin/python3
"""InstEval (lme4's lecture evaluations at ETH Zurich: 73,421 ratings 1-5 of 1,128 lecturers `d` by
2,972 students `s`) from the Debian package r-cran-lme4 into an SQLite table
ratings(student, lecturer, rating), rows in a fixed shuffled order (seed 0) so that --val-split
holds a random 10%, not the last students. The package keeps its data sets in R's lazy-load
database (data/Rdata.rdx: the index, data/Rdata.rdb: zlib-compressed serialized objects), read
here with python3-rdata; R itself is not needed.

  examples/insteval_sqlite.py LME4_DIR OUT.db   (LME4_DIR: .../site-library/lme4)"""
import os
import sqlite3
import sys

import numpy as np
from rdata_lazyload import load


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    df = load(sys.argv[1], "InstEval")
    order = np.random.default_rng(0).permutation(len(df))
    rows = [(str(df["s"].iloc[i]), str(df["d"].iloc[i]), float(df["y"].iloc[i])) for i in order]
    tmp = sys.argv[2] + ".tmp"
    if os.path.exists(tmp):
        os.remove(tmp)
    db = sqlite3.connect(tmp)
    db.execute("CREATE TABLE ratings(student TEXT, lecturer TEXT, rating REAL)")
    db.executemany("INSERT INTO ratings VALUES (?, ?, ?)", rows)
    db.commit()
    db.close()
    os.replace(tmp, sys.argv[2])
    print(f"{sys.argv[2]}: {len(rows)} ratings of {df['d'].nunique()} lecturers by {df['s'].nunique()} students")


main()
