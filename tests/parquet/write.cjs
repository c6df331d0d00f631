// Writes Parquet test data with an independent implementation: Apache Arrow's Rust Parquet
// writer (npm parquet-wasm) fed Arrow tables built by Apache Arrow's JavaScript library.
// Installed by tests/parquet/npm_writer.sh into $HERD_NPM_MODULES.
//   node write.cjs cases DIR          the reader's test matrix + DIR/manifest.tsv + expected values
//   node write.cjs fashion IDX_DIR DIR N ROWS_PER_GROUP FILES
//                                     the first N Fashion-MNIST train images (and N/4 test ones)
//                                     as DIR/{train,test}/part=K/part-0000K.snappy.parquet
//   node write.cjs synth FILE MB ROWS_PER_GROUP   ~MB of random 28x28 uint8 images, snappy
//   node write.cjs bags JSON FILE ROWS_PER_GROUP INT32|INT64 [v2]
//                                     JSON {"tags": [[id, ...], ...], "label": [...], "f": [...]}
//                                     (f optional) as list<int> tags, int32 label, float32 f
"use strict";
const fs = require("fs");
const path = require("path");
const zlib = require("zlib");
const M = process.env.HERD_NPM_MODULES;
const pw = require(path.join(M, "parquet-wasm", "node", "parquet_wasm.js"));
const arrow = require(path.join(M, "apache-arrow"));

function write(file, table, opts = {}) {
  let b = new pw.WriterPropertiesBuilder()
    .setCompression(opts.codec ?? pw.Compression.SNAPPY)
    .setDictionaryEnabled(opts.dict ?? true)
    .setWriterVersion(opts.v2 ? pw.WriterVersion.V2 : pw.WriterVersion.V1)
    .setMaxRowGroupSize(opts.rowGroup ?? 1024 * 1024);
  if (opts.pageBytes) b = b.setDataPageSizeLimit(opts.pageBytes).setWriteBatchSize(64);
  for (const [col, enc] of Object.entries(opts.encodings ?? {})) b = b.setColumnEncoding(col, enc);
  const t = pw.Table.fromIPCStream(arrow.tableToIPC(table, "stream"));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, pw.writeParquet(t, b.build()));
}

// a small deterministic generator (xorshift32), so the data is the same on every run
let seed = 12345;
function rnd() {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
}

function listOf(type, rows) {
  return arrow.vectorFromArray(rows, new arrow.List(new arrow.Field("element", type, true)));
}

function cases(dir) {
  const n = 1000;
  const W = 5, C = 3, H = 2, Wd = 2, P = C * H * Wd;
  const col = {
    f32: Float32Array.from({ length: n }, () => Math.fround(rnd() * 200 - 100)),
    f64: Float64Array.from({ length: n }, () => rnd() * 1e6 - 5e5),
    i32: Int32Array.from({ length: n }, () => Math.floor(rnd() * 4e9 - 2e9)),
    small: Int32Array.from({ length: n }, (_, i) => i % 7),        // dictionary-friendly
    i64: BigInt64Array.from({ length: n }, () => BigInt(Math.floor(rnd() * 2 ** 40)) - 2n ** 39n),
    i8: Int8Array.from({ length: n }, () => Math.floor(rnd() * 256 - 128)),
    u16: Uint16Array.from({ length: n }, () => Math.floor(rnd() * 65536)),
    flag: Array.from({ length: n }, () => rnd() < 0.3),
    label: Int32Array.from({ length: n }, () => Math.floor(rnd() * 10)),
  };
  const vec = Array.from({ length: n }, () => Array.from({ length: W }, () => Math.fround(rnd() * 2 - 1)));
  const px = Array.from({ length: n }, () => Array.from({ length: P }, () => Math.floor(rnd() * 256)));
  const names = ["cat", "dog", "bird", "ant"];
  const text = Array.from({ length: n }, () => names[Math.floor(rnd() * 4)]);
  const sortedNames = [...names].sort();
  const sparse = Array.from({ length: n }, (_, i) => (i % 10 === 3 ? null : i * 0.25)); // nulls
  const table = new arrow.Table({
    f32: arrow.makeVector(col.f32), f64: arrow.makeVector(col.f64), i32: arrow.makeVector(col.i32),
    small: arrow.makeVector(col.small), i64: arrow.makeVector(col.i64), i8: arrow.makeVector(col.i8),
    u16: arrow.makeVector(col.u16), flag: arrow.vectorFromArray(col.flag, new arrow.Bool()),
    vec: listOf(new arrow.Float32(), vec), px: listOf(new arrow.Uint8(), px),
    raw: arrow.vectorFromArray(px.map((p) => Uint8Array.from(p)), new arrow.Binary()),
    name: arrow.vectorFromArray(text, new arrow.Utf8()),
    sparse: arrow.vectorFromArray(sparse, new arrow.Float64()),
    label: arrow.makeVector(col.label),
  });
  fs.mkdirSync(dir, { recursive: true });
  // expected values, float64 little-endian, row-major
  const put = (name, values) => fs.writeFileSync(path.join(dir, name + ".f64"), Buffer.from(Float64Array.from(values).buffer));
  put("f32", col.f32); put("f64", col.f64); put("i32", col.i32); put("small", col.small);
  put("i64", Array.from(col.i64, Number)); put("i8", col.i8); put("u16", col.u16);
  put("flag", col.flag.map(Number)); put("label", col.label);
  put("vec", vec.flat()); put("px", px.flat());
  put("name", text.map((t) => sortedNames.indexOf(t)));
  const lines = [];
  const numeric = "f32,f64,i32,small,i64,i8,u16,flag,vec";
  const codecs = { UNCOMPRESSED: pw.Compression.UNCOMPRESSED, SNAPPY: pw.Compression.SNAPPY,
                   GZIP: pw.Compression.GZIP, ZSTD: pw.Compression.ZSTD };
  // every codec x dictionary on/off x data page v1/v2, several row groups and pages each
  for (const [cname, codec] of Object.entries(codecs))
    for (const dict of [true, false])
      for (const v2 of [false, true]) {
        const f = `${cname.toLowerCase()}-${dict ? "dict" : "plain"}-${v2 ? "v2" : "v1"}.parquet`;
        write(path.join(dir, f), table, { codec, dict, v2, rowGroup: 300, pageBytes: 2048 });
        lines.push([`${f}?features=${numeric}&label=label`, numeric, "f32", "label"]);
        lines.push([`${f}?image=px&shape=${C}x${H}x${Wd}&label=name`, "px", "u8", "name"]);
      }
  // integers in DELTA_BINARY_PACKED, one row group, one page per column
  write(path.join(dir, "delta.parquet"), table, { dict: false, v2: true,
        encodings: { i32: pw.Encoding.DELTA_BINARY_PACKED, small: pw.Encoding.DELTA_BINARY_PACKED,
                     i64: pw.Encoding.DELTA_BINARY_PACKED, label: pw.Encoding.DELTA_BINARY_PACKED } });
  lines.push(["delta.parquet?features=i32,small,i64&label=label", "i32,small,i64", "f32", "label"]);
  // raw image bytes in a BYTE_ARRAY column, and a list of bytes as an image
  lines.push(["snappy-dict-v1.parquet?image=raw&shape=3x2x2", "px", "u8", "label"]);
  // a float column as an f32 target (regression) instead of class ids
  lines.push(["zstd-plain-v2.parquet?features=vec&target=f64", "vec", "f32", "f64"]);
  // a Spark-style partitioned directory: label=K/part-....snappy.parquet, _SUCCESS, .crc files
  const part = path.join(dir, "partitioned");
  const order = [];
  for (let k = 0; k < 10; k++) {
    const rows = [];
    for (let i = 0; i < n; i++) if (col.label[i] === k) rows.push(i);
    for (let half = 0; half < 2; half++) {
      const idx = rows.slice(half ? rows.length >> 1 : 0, half ? rows.length : rows.length >> 1);
      order.push(...idx);
      const t = new arrow.Table({ f32: arrow.makeVector(Float32Array.from(idx, (i) => col.f32[i])),
                                  vec: listOf(new arrow.Float32(), idx.map((i) => vec[i])) });
      const name = `part-0000${half}-0c0ffee0-${k}.c000.snappy.parquet`;
      write(path.join(part, `label=${k}`, name), t, { rowGroup: 50 });
      fs.writeFileSync(path.join(part, `label=${k}`, `.${name}.crc`), "not parquet");
    }
  }
  fs.writeFileSync(path.join(part, "_SUCCESS"), "");
  fs.mkdirSync(path.join(part, "_temporary", "0"), { recursive: true });
  fs.writeFileSync(path.join(part, "_temporary", "0", "junk"), "not parquet");
  const perm = (name, w) => { const a = new Float64Array(fs.readFileSync(path.join(dir, name + ".f64")).buffer.slice(0));
                              return order.flatMap((i) => Array.from(a.subarray(i * w, (i + 1) * w))); };
  put("part_f32", perm("f32", 1)); put("part_vec", perm("vec", W)); put("part_label", perm("label", 1));
  lines.push(["partitioned?features=f32,vec,label", "part_f32,part_vec,part_label", "f32", "part_label"]);
  // inputs for the error tests
  write(path.join(dir, "brotli.parquet"), table, { codec: pw.Compression.BROTLI });
  write(path.join(dir, "bss.parquet"), table, { dict: false, encodings: { f32: pw.Encoding.BYTE_STREAM_SPLIT } });
  write(path.join(dir, "plain-uncompressed.parquet"),
        new arrow.Table({ label: arrow.makeVector(col.label), f32: arrow.makeVector(col.f32) }),
        { codec: pw.Compression.UNCOMPRESSED, dict: false });
  fs.writeFileSync(path.join(dir, "manifest.tsv"), lines.map((l) => l.join("\t")).join("\n") + "\n");
}

// small seeds for the libFuzzer target (tests/fuzz/corpus/parquet): each codec, encoding and
// page version on a few rows of the same columns, several row groups each
function corpus(dir) {
  const n = 24;
  const rows = (f) => Array.from({ length: n }, (_, i) => f(i));
  const table = new arrow.Table({
    f32: arrow.makeVector(Float32Array.from(rows((i) => i * 1.5 - 7))),
    i64: arrow.makeVector(BigInt64Array.from(rows((i) => BigInt(i * 1000 - 5)))),
    flag: arrow.vectorFromArray(rows((i) => i % 3 === 0), new arrow.Bool()),
    vec: listOf(new arrow.Float32(), rows((i) => [i, -i, i / 2])),
    px: listOf(new arrow.Uint8(), rows((i) => Array.from({ length: 12 }, (_, j) => (i * 12 + j) & 255))),
    raw: arrow.vectorFromArray(rows((i) => Uint8Array.from({ length: 12 }, (_, j) => (i + j) & 255)), new arrow.Binary()),
    name: arrow.vectorFromArray(rows((i) => ["a", "bb", "ccc"][i % 3]), new arrow.Utf8()),
    label: arrow.makeVector(Int32Array.from(rows((i) => i % 4))),
  });
  const C = pw.Compression;
  const sets = [["none-dict-v1", { codec: C.UNCOMPRESSED }], ["none-plain-v2", { codec: C.UNCOMPRESSED, dict: false, v2: true }],
                ["snappy-dict-v2", { v2: true }], ["gzip-plain-v1", { codec: C.GZIP, dict: false }],
                ["zstd-dict-v1", { codec: C.ZSTD }],
                ["delta", { codec: C.UNCOMPRESSED, dict: false, v2: true,
                            encodings: { i64: pw.Encoding.DELTA_BINARY_PACKED, label: pw.Encoding.DELTA_BINARY_PACKED } }]];
  for (const [name, o] of sets) write(path.join(dir, name + ".parquet"), table, { rowGroup: 8, ...o });
  // bags (parquet:...?bags=tags:4): lists of 1..4 int64 and int32 ids
  const bagTable = new arrow.Table({
    tags: listOf(new arrow.Int64(), rows((i) => Array.from({ length: 1 + (i % 4) }, (_, j) => BigInt((i * 7 + j) % 50)))),
    t32: listOf(new arrow.Int32(), rows((i) => Array.from({ length: 1 + ((i * 3) % 4) }, (_, j) => (i + j * 5) % 50))),
    f32: arrow.makeVector(Float32Array.from(rows((i) => i * 0.25))),
    label: arrow.makeVector(Int32Array.from(rows((i) => i % 3))),
  });
  write(path.join(dir, "bags-dict-v1.parquet"), bagTable, { rowGroup: 8, codec: C.UNCOMPRESSED });
  write(path.join(dir, "bags-plain-v2.parquet"), bagTable, { rowGroup: 8, codec: C.UNCOMPRESSED, dict: false, v2: true });
}

function readIdx(file) {
  const b = zlib.gunzipSync(fs.readFileSync(file));
  const ndim = b[3], dims = [];
  for (let i = 0; i < ndim; i++) dims.push(b.readUInt32BE(4 + 4 * i));
  return { dims, data: b.subarray(4 + 4 * ndim) };
}

function fashion(idxDir, dir, n, perGroup, files) {
  for (const [split, src, count] of [["train", "train", n], ["test", "t10k", Math.floor(n / 4)]]) {
    const img = readIdx(path.join(idxDir, `${src}-images-idx3-ubyte.gz`)).data;
    const lab = readIdx(path.join(idxDir, `${src}-labels-idx1-ubyte.gz`)).data;
    for (let k = 0; k < files; k++) {
      const lo = Math.floor((count * k) / files), hi = Math.floor((count * (k + 1)) / files);
      const pixels = [];
      for (let i = lo; i < hi; i++) pixels.push(Array.from(img.subarray(i * 784, (i + 1) * 784)));
      const t = new arrow.Table({
        image: listOf(new arrow.Uint8(), pixels),
        label: arrow.makeVector(BigInt64Array.from(lab.subarray(lo, hi), (v) => BigInt(v))),
      });
      write(path.join(dir, split, `part=${k}`, `part-${String(k).padStart(5, "0")}-f00d.c000.snappy.parquet`), t,
            { rowGroup: perGroup });
    }
    fs.writeFileSync(path.join(dir, split, "_SUCCESS"), "");
  }
}

function synth(file, mb, perGroup) {
  const n = Math.floor((mb * 1048576) / 784);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // written a row group at a time through the writer's stream API would need a sink; one call
  // per file part keeps memory at one part: the bench reads a directory of such parts
  const per = Math.max(perGroup, 20000);
  for (let lo = 0, k = 0; lo < n; lo += per, k++) {
    const m = Math.min(per, n - lo);
    const values = new Uint8Array(m * 784);
    for (let i = 0; i < values.length; i++) values[i] = (rnd() * 256) | 0;
    const offsets = Int32Array.from({ length: m + 1 }, (_, i) => i * 784);
    const child = arrow.makeData({ type: new arrow.Uint8(), length: m * 784, data: values });
    const list = arrow.makeData({ type: new arrow.List(new arrow.Field("element", new arrow.Uint8(), true)),
                                  length: m, valueOffsets: offsets, child });
    const t = new arrow.Table({ image: arrow.makeVector(list),
                                label: arrow.makeVector(Int32Array.from({ length: m }, () => (rnd() * 10) | 0)) });
    write(path.join(file, `part-${String(k).padStart(5, "0")}.snappy.parquet`), t, { rowGroup: perGroup });
  }
}

function bags(json, file, rowGroup, type, v2) {
  const d = JSON.parse(fs.readFileSync(json, "utf8"));
  const cols = { tags: listOf(type === "INT32" ? new arrow.Int32() : new arrow.Int64(),
                              type === "INT32" ? d.tags : d.tags.map((b) => b.map(BigInt))),
                 label: arrow.vectorFromArray(Int32Array.from(d.label)) };
  if (d.f) cols.f = arrow.vectorFromArray(Float32Array.from(d.f));
  write(file, new arrow.Table(cols), { rowGroup, v2: v2 === "v2", dict: !v2, pageBytes: 256 });
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "cases") cases(args[0]);
else if (mode === "corpus") corpus(args[0]);
else if (mode === "fashion") fashion(args[0], args[1], +args[2], +args[3], +args[4]);
else if (mode === "synth") synth(args[0], +args[1], +args[2]);
else if (mode === "bags") bags(args[0], args[1], +args[2], args[3], args[4]);
else { console.error("usage: write.cjs cases DIR | fashion IDX_DIR DIR N ROWS_PER_GROUP FILES | synth DIR MB ROWS"); process.exit(2); }
