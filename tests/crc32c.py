"""CRC32C (Castagnoli) and TFRecord's masked form, written from the definitions (bitwise,
reflected polynomial 0x82F63B78), independent of herd's C implementation: the TensorBoard
test checks herd's records with it, and tests/fuzz/make_corpus.sh frames TFRecord seeds."""


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    return c ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
