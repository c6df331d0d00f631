#!/usr/bin/python3
"""Jane Austen's six novels (Project Gutenberg texts, public domain) from the Debian package
r-cran-janeaustenr into one UTF-8 text file for `herd convert --tokenizer char`. The package keeps
each novel as a character vector of lines in R's lazy-load database (data/Rdata.rdx: the index,
data/Rdata.rdb: zlib-compressed serialized objects), read here with python3-rdata; R itself is not
needed. The novels are written in a fixed order, one line per line of the book.

  examples/austen_text.py JANEAUSTENR_DIR OUT.txt   (JANEAUSTENR_DIR: .../site-library/janeaustenr)"""
import os
import sys

from rdata_lazyload import load

NOVELS = ["sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion"]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    lines = []
    for name in NOVELS:
        lines += [str(s) for s in load(sys.argv[1], name)]
    tmp = sys.argv[2] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, sys.argv[2])
    print(f"{sys.argv[2]}: {len(NOVELS)} novels, {len(lines)} lines, {os.path.getsize(sys.argv[2])} bytes")


main()
