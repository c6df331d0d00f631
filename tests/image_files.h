/* Test-only writers of PNG (libpng's simplified API) and JPEG (libjpeg) images into memory,
 * for the image reader tests and fuzzers. Pixels are HWC bytes, c = 1 or 3. */
#ifndef HERD_TEST_IMAGE_FILES_H
#define HERD_TEST_IMAGE_FILES_H

#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

/* malloc'd PNG bytes in *out (length *len); 0 on failure. */
static inline int test_png(const unsigned char *pix, int w, int h, int c, unsigned char **out, size_t *len) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)w;
    im.height = (png_uint_32)h;
    im.format = c == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    png_alloc_size_t n = 0;
    if (!png_image_write_to_memory(&im, NULL, &n, 0, pix, 0, NULL)) return 0;
    *out = malloc(n);
    if (!*out || !png_image_write_to_memory(&im, *out, &n, 0, pix, 0, NULL)) return 0;
    *len = n;
    return 1;
}

/* malloc'd JPEG bytes (quality q) in *out; 0 on failure. progressive: a progressive JPEG;
 * chroma444: RGB without chroma subsampling (libjpeg's default is 4:2:0). */
static inline int test_jpeg_with(const unsigned char *pix, int w, int h, int c, int q, int progressive, int chroma444,
                                 unsigned char **out, size_t *len) {
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    unsigned long n = 0;
    unsigned char *buf = NULL;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, &buf, &n);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = c;
    ci.in_color_space = c == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, q, TRUE);
    if (progressive) jpeg_simple_progression(&ci);
    if (chroma444 && c == 3) ci.comp_info[0].h_samp_factor = ci.comp_info[0].v_samp_factor = 1;
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(pix + (size_t)ci.next_scanline * (size_t)w * (size_t)c);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    *out = malloc(n);
    if (!*out) return 0;
    memcpy(*out, buf, n);
    free(buf);
    *len = n;
    return 1;
}

/* A baseline 4:2:0 JPEG (libjpeg's defaults). */
static inline int test_jpeg(const unsigned char *pix, int w, int h, int c, int q, unsigned char **out, size_t *len) {
    return test_jpeg_with(pix, w, h, c, q, 0, 0, out, len);
}

static inline int test_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

#endif
