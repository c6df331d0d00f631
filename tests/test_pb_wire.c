/* The protobuf wire format both ways: varints at every length boundary (negative int64 as
 * 10 bytes), fixed32/64 and floats, length-delimited and nested fields, packed int64; and
 * the reader's refusals: truncated varints and fixed values, lengths past the end, varints
 * over 64 bits, field number 0, groups. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "io/pb_wire.h"

static void roundtrip(void) {
    const uint64_t vals[] = {0, 1, 127, 128, 16383, 16384, (1ull << 32) - 1, 1ull << 63, UINT64_MAX,
                             (uint64_t)(int64_t)-1};
    const size_t n_vals = sizeof vals / sizeof vals[0];
    pb_writer w = {0}, sub = {0};
    for (size_t i = 0; i < n_vals; i++) herdi_pb_put_varint(&w, 1, vals[i]);
    herdi_pb_put_fixed32(&w, 2, 0xDEADBEEFu);
    herdi_pb_put_fixed64(&w, 3, 0x0123456789ABCDEFull);
    herdi_pb_put_float(&w, 4, -1.5f);
    herdi_pb_put_double(&w, 5, 3.25);
    herdi_pb_put_string(&w, 6, "herd");
    herdi_pb_put_varint(&sub, 1, 300);
    herdi_pb_put_message(&w, 7, &sub);
    const int64_t packed[3] = {3, 270, -2};
    herdi_pb_put_packed_i64(&w, 8, packed, 3);
    herdi_pb_put_varint(&w, 536870911, 5); /* the largest field number */
    CHECK(!w.failed, "writer failed");
    /* known encodings: 300 is ac 02, field 7 LEN is 0x3a */
    const uint8_t sub_bytes[] = {0x3a, 0x03, 0x08, 0xac, 0x02};
    int found = 0;
    for (size_t i = 0; i + sizeof sub_bytes <= w.len; i++) found |= !memcmp(w.buf + i, sub_bytes, sizeof sub_bytes);
    CHECK(found, "nested message encoded as 3a 03 08 ac 02");

    pb_reader r = pb_reader_of(w.buf, w.len);
    pb_field f;
    const char *why = NULL;
    for (size_t i = 0; i < n_vals; i++) {
        CHECK(herdi_pb_next(&r, &f, &why) == 1 && f.number == 1 && f.wire == PB_VARINT && f.u == vals[i],
              "varint %zu: got %llu", i, (unsigned long long)f.u);
    }
    CHECK(herdi_pb_next(&r, &f, &why) == 1 && f.wire == PB_FIXED32 && f.u == 0xDEADBEEFu, "fixed32");
    CHECK(herdi_pb_next(&r, &f, &why) == 1 && f.wire == PB_FIXED64 && f.u == 0x0123456789ABCDEFull, "fixed64");
    CHECK(herdi_pb_next(&r, &f, &why) == 1 && herdi_pb_as_float(&f) == -1.5f, "float");
    CHECK(herdi_pb_next(&r, &f, &why) == 1 && herdi_pb_as_double(&f) == 3.25, "double");
    CHECK(herdi_pb_next(&r, &f, &why) == 1 && f.wire == PB_LEN && f.len == 4 && !memcmp(f.data, "herd", 4), "string");
    CHECK(herdi_pb_next(&r, &f, &why) == 1 && f.number == 7 && f.len == 3, "sub-message");
    pb_reader s = pb_reader_of(f.data, f.len);
    pb_field g;
    CHECK(herdi_pb_next(&s, &g, &why) == 1 && g.u == 300 && herdi_pb_next(&s, &g, &why) == 0, "sub-message content");
    CHECK(herdi_pb_next(&r, &f, &why) == 1 && f.number == 8 && f.wire == PB_LEN, "packed");
    pb_reader p = pb_reader_of(f.data, f.len);
    for (int i = 0; i < 3; i++) {
        uint64_t v = 0;
        CHECK(herdi_pb_read_varint(&p, &v) && (int64_t)v == packed[i], "packed value %d", i);
    }
    CHECK(p.p == p.end, "packed field fully read");
    CHECK(herdi_pb_next(&r, &f, &why) == 1 && f.number == 536870911 && f.u == 5, "largest field number");
    CHECK(herdi_pb_next(&r, &f, &why) == 0, "clean end");
    herdi_pb_writer_free(&w);
}

static void expect_bad(const uint8_t *b, size_t n, const char *want, const char *what) {
    pb_reader r = pb_reader_of(b, n);
    pb_field f;
    const char *why = "";
    int k;
    while ((k = herdi_pb_next(&r, &f, &why)) == 1) {}
    CHECK(k == -1 && strstr(why, want), "%s: got %d '%s', expected an error with '%s'", what, k, why, want);
}

static void refusals(void) {
    const uint8_t trunc_tag[] = {0x80};
    const uint8_t trunc_varint[] = {0x08, 0xff};
    const uint8_t long_varint[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    const uint8_t trunc_fixed[] = {0x0d, 0x01, 0x02};
    const uint8_t past_end[] = {0x0a, 0x05, 'a', 'b'};
    const uint8_t huge_len[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    const uint8_t field0[] = {0x00, 0x01};
    const uint8_t group[] = {0x0b};
    const uint8_t wire7[] = {0x0f};
    expect_bad(trunc_tag, sizeof trunc_tag, "tag", "truncated tag");
    expect_bad(trunc_varint, sizeof trunc_varint, "varint", "truncated varint");
    expect_bad(long_varint, sizeof long_varint, "varint", "varint over 64 bits");
    expect_bad(trunc_fixed, sizeof trunc_fixed, "fixed", "truncated fixed32");
    expect_bad(past_end, sizeof past_end, "past the end", "length past the end");
    expect_bad(huge_len, sizeof huge_len, "past the end", "length 2^64-1");
    expect_bad(field0, sizeof field0, "field number", "field number 0");
    expect_bad(group, sizeof group, "wire type", "start group");
    expect_bad(wire7, sizeof wire7, "wire type", "wire type 7");
    static const uint8_t empty[1];
    pb_reader r = pb_reader_of(empty, 0);
    pb_field f;
    const char *why = NULL;
    CHECK(herdi_pb_next(&r, &f, &why) == 0, "empty buffer is a clean end");
}

int main(void) {
    roundtrip();
    refusals();
    return check_summary();
}
