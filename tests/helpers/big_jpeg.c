/* Writes a W x H grayscale JPEG row by row (memory: one row), for the decode-cap test:
 * big_jpeg OUT.jpg W H. The content is a slow diagonal gradient, cheap to encode. */
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: big_jpeg OUT.jpg W H\n");
        return 2;
    }
    long w = atol(argv[2]), h = atol(argv[3]);
    if (w < 1 || h < 1 || w > 65500 || h > 65500) return 2;
    FILE *f = fopen(argv[1], "wb");
    JSAMPLE *row = malloc((size_t)w);
    if (!f || !row) return 1;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w, c.image_height = (JDIMENSION)h;
    c.input_components = 1, c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 50, TRUE);
    jpeg_start_compress(&c, TRUE);
    for (long y = 0; y < h; y++) {
        for (long x = 0; x < w; x++) row[x] = (JSAMPLE)(((x + y) * 255) / (w + h));
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
    free(row);
    return 0;
}
