/* Parquet page decompression (parquet_codec.h) through Debian's codec libraries. */
#include "data/parquet_codec.h"

#include <snappy-c.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "data/parquet_meta.h"

static herd_status gunzip(const uint8_t *src, size_t n, uint8_t *out, size_t want, const char *what, herd_error *err) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 32) != Z_OK) /* gzip or zlib header */
        return herd_fail(err, HERD_ENOMEM, "%s: cannot start zlib", what);
    size_t done = 0;
    int rc;
    for (;;) { /* a gzip page may hold several members back to back */
        z.next_in = (Bytef *)src, z.avail_in = n > UINT32_MAX ? UINT32_MAX : (uInt)n;
        z.next_out = out + done, z.avail_out = want - done > UINT32_MAX ? UINT32_MAX : (uInt)(want - done);
        uInt in0 = z.avail_in, out0 = z.avail_out;
        rc = inflate(&z, Z_NO_FLUSH);
        src += in0 - z.avail_in, n -= in0 - z.avail_in;
        done += out0 - z.avail_out;
        if (rc == Z_STREAM_END && n > 0 && inflateReset(&z) == Z_OK) continue;
        if (rc != Z_OK || (in0 == z.avail_in && out0 == z.avail_out)) break; /* end, error or no progress */
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END || done != want || n != 0)
        return herd_fail(err, HERD_EFORMAT, "%s: corrupt GZIP data (%s; %zu of %zu bytes)", what,
                         z.msg ? z.msg : rc == Z_STREAM_END ? "wrong size" : "truncated", done, want);
    return HERD_OK;
}

herd_status herdi_pq_decompress(int codec, const uint8_t *src, size_t n, uint8_t *out, size_t want, const char *what,
                          herd_error *err) {
    switch (codec) {
    case PQ_UNCOMPRESSED:
        if (n != want)
            return herd_fail(err, HERD_EFORMAT, "%s: uncompressed page of %zu bytes, its header says %zu", what, n,
                             want);
        if (n) memcpy(out, src, n);
        return HERD_OK;
    case PQ_SNAPPY: {
        size_t len;
        if (snappy_uncompressed_length((const char *)src, n, &len) != SNAPPY_OK || len != want)
            return herd_fail(err, HERD_EFORMAT, "%s: corrupt SNAPPY data (its length is not the header's %zu)", what,
                             want);
        if (snappy_uncompress((const char *)src, n, (char *)out, &len) != SNAPPY_OK || len != want)
            return herd_fail(err, HERD_EFORMAT, "%s: corrupt SNAPPY data", what);
        return HERD_OK;
    }
    case PQ_GZIP: return gunzip(src, n, out, want, what, err);
    case PQ_ZSTD: {
        size_t got = ZSTD_decompress(out, want, src, n);
        if (ZSTD_isError(got) || got != want)
            return herd_fail(err, HERD_EFORMAT, "%s: corrupt ZSTD data (%s)", what,
                             ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong size");
        return HERD_OK;
    }
    default:
        return herd_fail(err, HERD_EUNSUPPORTED, "%s: compression codec %s is not supported (herd reads "
                         "UNCOMPRESSED, SNAPPY, GZIP and ZSTD)", what, herdi_pq_codec_name(codec));
    }
}
