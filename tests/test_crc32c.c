/* CRC-32C on every path (SSE4.2 when the CPU has it, slicing by 8, the byte loop): known
 * vectors (RFC 3720 B.4, "123456789"), agreement on random buffers of every length and
 * alignment across the 3-stream block boundaries, continuation, the copying CRC (copy and
 * check in one pass) on the same buffers, and HERD_CRC32C forcing a software path (and the
 * copying CRC's fallback) in a fresh process. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "io/crc32c.h"

static const herd_crc32c_impl impls[] = {HERD_CRC32C_AUTO, HERD_CRC32C_BYTEWISE, HERD_CRC32C_SLICE8, HERD_CRC32C_SSE42};
static const char *const impl_names[] = {"auto", "bytewise", "slice8", "sse4.2"};

static void vector(const char *what, const void *data, size_t n, uint32_t want) {
    for (int k = 0; k < 4; k++) {
        uint32_t got;
        if (!herd_crc32c_with(impls[k], 0, data, n, &got)) continue;
        CHECK(got == want, "%s on %s: %08x, expected %08x", what, impl_names[k], (unsigned)got, (unsigned)want);
    }
}

static void known_vectors(void) {
    uint8_t b[48];
    vector("123456789", "123456789", 9, 0xE3069283u);
    vector("nothing", "", 0, 0);
    memset(b, 0, 32);
    vector("32 zero bytes", b, 32, 0x8A9136AAu);
    memset(b, 0xFF, 32);
    vector("32 0xFF bytes", b, 32, 0x62A8AB43u);
    for (int i = 0; i < 32; i++) b[i] = (uint8_t)i;
    vector("32 ascending bytes", b, 32, 0x46DD794Eu);
    for (int i = 0; i < 32; i++) b[i] = (uint8_t)(31 - i);
    vector("32 descending bytes", b, 32, 0x113FDB5Cu);
    static const uint8_t iscsi[48] = {0x01, 0xC0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                      0x14, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0x14, 0, 0, 0, 0x18,
                                      0x28, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0};
    vector("iSCSI read command (RFC 3720 B.4)", iscsi, 48, 0xD9963A56u);
}

/* Every path equals the byte loop on random data, any length/offset, and continues. */
static void random_buffers(void) {
    size_t cap = 100000;
    uint8_t *buf = malloc(cap + 16);
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < cap + 16; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        buf[i] = (uint8_t)s;
    }
    size_t lens[] = {1, 7, 8, 9, 63, 4095, 12287, 12288, 12289, 24576 + 5, 36864, 65536 + 3, cap};
    int disagree = 0;
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
        for (size_t off = 0; off < 9; off++) {
            uint32_t ref, got;
            herd_crc32c_with(HERD_CRC32C_BYTEWISE, 0, buf + off, lens[li], &ref);
            for (int k = 0; k < 4; k++) {
                if (!herd_crc32c_with(impls[k], 0, buf + off, lens[li], &got)) continue;
                if (got != ref && disagree++ < 5)
                    CHECK(0, "%s over %zu bytes at offset %zu: %08x, bytewise %08x", impl_names[k], lens[li], off,
                          (unsigned)got, (unsigned)ref);
            }
            /* the copying CRC (this process's path): the same CRC, the bytes copied, nothing past them */
            uint8_t *dst = malloc(lens[li] + 24);
            memset(dst, 0xA5, lens[li] + 24);
            uint32_t copied = herd_crc32c_copy(0, dst + 8 - off % 8, buf + off, lens[li]);
            int same = memcmp(dst + 8 - off % 8, buf + off, lens[li]) == 0, untouched = 1;
            for (size_t i = 0; i < 8 - off % 8; i++) untouched &= dst[i] == 0xA5;
            for (size_t i = 8 - off % 8 + lens[li]; i < lens[li] + 24; i++) untouched &= dst[i] == 0xA5;
            if ((copied != ref || !same || !untouched) && disagree++ < 5)
                CHECK(0, "copying CRC over %zu bytes at offset %zu: %08x (bytewise %08x), copy %s, around it %s",
                      lens[li], off, (unsigned)copied, (unsigned)ref, same ? "equal" : "differs",
                      untouched ? "untouched" : "written");
            free(dst);
            uint32_t split = herd_crc32c(herd_crc32c(0, buf + off, lens[li] / 3), buf + off + lens[li] / 3,
                                         lens[li] - lens[li] / 3);
            if (split != ref && disagree++ < 5)
                CHECK(0, "continuation over %zu bytes: %08x, expected %08x", lens[li], (unsigned)split, (unsigned)ref);
        }
    CHECK(disagree == 0, "%d disagreements with the byte loop", disagree);
    free(buf);
}

/* A fresh process with HERD_CRC32C set uses the forced path and still gets the vectors right. */
static void forced(const char *self, const char *value, const char *want_name) {
    pid_t pid = fork();
    if (pid == 0) {
        setenv("HERD_CRC32C", value, 1);
        execl(self, self, "--child", want_name, (char *)NULL);
        _exit(3);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "HERD_CRC32C=%s: child exit %d", value,
          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--child")) {
        CHECK(!strcmp(herd_crc32c_impl_name(), argv[2]), "path %s, expected %s", herd_crc32c_impl_name(), argv[2]);
        uint32_t unused;
        CHECK(!herd_crc32c_with(HERD_CRC32C_SSE42, 0, "", 0, &unused), "SSE4.2 still offered when forced off");
        known_vectors();
        random_buffers();
        return check_summary();
    }
    uint32_t unused;
    printf("crc32c: this process uses %s (SSE4.2 path %s)\n", herd_crc32c_impl_name(),
           herd_crc32c_with(HERD_CRC32C_SSE42, 0, "", 0, &unused) ? "tested" : "not available on this CPU");
    known_vectors();
    random_buffers();
    forced(argv[0], "sw", "slice8");
    forced(argv[0], "bytewise", "bytewise");
    return check_summary();
}
