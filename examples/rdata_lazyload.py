"""One data set from an R package's lazy-load database (data/Rdata.rdx: the index, data/Rdata.rdb:
zlib-compressed serialized objects), as Debian's r-cran-* packages ship them, read with
python3-rdata; R itself is not needed. Used by insteval_sqlite.py and austen_text.py."""
import gzip
import os
import zlib

import rdata


def load(pkg, name):
    base = os.path.join(pkg, "data", "Rdata")
    index = rdata.conversion.convert(rdata.parser.parse_data(b"RDX3\n" + gzip.decompress(open(base + ".rdx", "rb").read())))
    off, length = (int(v) for v in index["variables"][name])
    with open(base + ".rdb", "rb") as f:
        f.seek(off)
        blob = f.read(length)
    raw = zlib.decompress(blob[4:])  # a 4-byte length, then zlib
    return rdata.conversion.convert(rdata.parser.parse_data(b"RDX3\n" + raw))
