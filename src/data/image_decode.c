/* PNG and JPEG decoding for the image readers: libpng and libjpeg with error handlers that
 * longjmp back here (instead of the libraries' default of ending the process), strict about corrupt
 * data; then channel conversion, antialiased scaling (data/resample.h) and a center crop. */
#include "data/image_decode.h"

#include "data/resample.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

/* Deflate (PNG) expands at most ~1032:1 and JPEG's smallest code is ~1 bit per 8x8 block
 * and component, so more pixel bytes than this cannot come from len bytes. */
#define IMAGE_MAX_RATIO 4096u
/* The decoded pixels of one image (after a JPEG's DCT reduction) are capped at 1 GiB. */
#define IMAGE_MAX_BYTES ((size_t)1 << 30)

int herd_image_is_encoded(const uint8_t *buf, size_t len) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (len >= 8 && memcmp(buf, png_sig, 8) == 0) return 1;
    return len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF;
}

/* A declared size that len bytes cannot encode is corrupt; a decoded size above the cap is refused. */
static herd_status check_pixels(size_t w, size_t h, size_t c, size_t len, const char *what, size_t *bytes,
                                herd_error *err) {
    size_t limit = len > (SIZE_MAX - 65536) / IMAGE_MAX_RATIO ? SIZE_MAX : len * IMAGE_MAX_RATIO + 65536;
    if (w == 0 || h == 0 || !herd_mul_size(w, h, bytes) || !herd_mul_size(*bytes, c, bytes) || *bytes > limit)
        return herd_fail(err, HERD_EFORMAT, "%s: image of %zux%zu pixels cannot come from %zu bytes", what, w, h,
                         len);
    return HERD_OK;
}

static herd_status check_cap(size_t w, size_t h, size_t bytes, const char *what, herd_error *err) {
    if (bytes > IMAGE_MAX_BYTES)
        return herd_fail(err, HERD_EUNSUPPORTED, "%s: a %zux%zu image decodes to %zu bytes, over the %zu-byte cap", what,
                         w, h, bytes, IMAGE_MAX_BYTES);
    return HERD_OK;
}

/* libpng's error callback longjmps back into decode_png (its default would abort the
 * process when no jmp_buf is set); warnings are dropped, a library does not print. */
typedef struct png_fail {
    jmp_buf jump;
    char msg[200];
} png_fail;

typedef struct png_source {
    const uint8_t *p;
    size_t left;
} png_source;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_fail *f = png_get_error_ptr(png);
    snprintf(f->msg, sizeof f->msg, "%s", msg);
    longjmp(f->jump, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_read_memory(png_structp png, png_bytep out, size_t n) {
    png_source *s = png_get_io_ptr(png);
    if (n > s->left) png_error(png, "truncated PNG data");
    memcpy(out, s->p, n);
    s->p += n;
    s->left -= n;
}

static herd_status decode_png(const uint8_t *buf, size_t len, const char *what, herd_image *img, herd_error *err) {
    png_fail fail;
    png_source src = {buf, len};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &fail, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile pix = NULL; /* assigned after setjmp and needed after a longjmp */
    png_bytep *volatile rows = NULL;
    if (!info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory for the PNG decoder", what);
    }
    if (setjmp(fail.jump)) {
        png_destroy_read_struct(&png, &info, NULL);
        free(pix);
        free(rows);
        return herd_fail(err, HERD_EFORMAT, "%s: bad PNG: %s", what, fail.msg);
    }
    png_set_read_fn(png, &src, png_read_memory);
    png_set_benign_errors(png, 0); /* e.g. a CRC error or extra image data: corrupt, not usable */
    png_read_info(png, info);
    png_set_scale_16(png);
    png_set_expand(png); /* palette to RGB, gray below 8 bits to 8, tRNS to alpha */
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t w = png_get_image_width(png, info), h = png_get_image_height(png, info), bytes;
    int c = png_get_channels(png, info);
    herd_status st = check_pixels(w, h, (size_t)c, len, what, &bytes, err);
    if (st == HERD_OK) st = check_cap(w, h, bytes, what, err);
    if (st == HERD_OK && ((c != 1 && c != 3) || png_get_rowbytes(png, info) != w * (size_t)c))
        st = herd_fail(err, HERD_EFORMAT, "%s: bad PNG: %d channels after conversion", what, c);
    if (st == HERD_OK && (!(pix = malloc(bytes)) || !(rows = herd_malloc_array(h, sizeof *rows))))
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for %zu pixel bytes", what, bytes);
    if (st != HERD_OK) {
        png_destroy_read_struct(&png, &info, NULL);
        free(pix);
        free(rows);
        return st;
    }
    for (size_t y = 0; y < h; y++) rows[y] = pix + y * w * (size_t)c;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    img->pix = pix;
    img->w = (int)w, img->h = (int)h, img->c = c;
    return HERD_OK;
}

typedef struct jpeg_fail {
    struct jpeg_error_mgr mgr; /* first, so that cinfo->err points at the whole struct */
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_fail;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_fail *f = (jpeg_fail *)cinfo->err;
    f->mgr.format_message(cinfo, f->msg);
    longjmp(f->jump, 1);
}

/* Warnings (level -1) mean corrupt data that libjpeg would paper over: fail instead.
 * Trace messages (level >= 0) are dropped: a library does not print. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level < 0) jpeg_on_error(cinfo);
}

/* JPEGs much larger than needed are reduced in the DCT (libjpeg's scale 1/8, 1/4 or 1/2) to the
 * smallest size still at least twice what covers cover_w x cover_h, so the IDCT and colour
 * conversion run on fewer pixels, a huge image costs little memory, and the resampler's
 * antialiased filter does the rest at full quality (tests/test_resize_vs_pil.py bounds the
 * difference from a full decode + resize). */
/* The part of a decoded image that a window of the output needs: part = {top, left, height,
 * width} in the decoded (reduced) image, whose whole size is full_w x full_h. */
typedef struct jpeg_part {
    const int *win; /* {top, left, height, width} of the cover_h x cover_w output, or NULL: all of it */
    int want_c;     /* the channels wanted: a JPEG of other components is decoded whole (converted after) */
    int skip_tail;  /* the rows below the part are known sound: not decoded at all */
    int checked;    /* out: every row was decoded (entropy-decoded at least) */
    int part[4];
    int full_w, full_h;
} jpeg_part;

static void cover_region(int iw, int ih, int h, int w, double r[4]);

/* Rows and columns the window reads, widened by JPEG_PART_MARGIN pixels (each way, within the
 * image): the decoder's fancy upsampling of subsampled chroma reads neighbours, so pixels at
 * the edge of a partial decode may differ from a full decode; these are never read. */
#define JPEG_PART_MARGIN 16

static herd_status jpeg_window_reach(const jpeg_part *jp, int ow, int oh, int cover_w, int cover_h, int reach[4],
                                     herd_error *err) {
    double r[4];
    cover_region(ow, oh, cover_h, cover_w, r);
    herd_status st = herd_resample_reach(ow, oh, r[0], r[1], r[2], r[3], cover_w, cover_h, jp->win, reach, err);
    if (st != HERD_OK) return st;
    int top = reach[0] - JPEG_PART_MARGIN, left = reach[1] - JPEG_PART_MARGIN;
    int bottom = reach[0] + reach[2] + JPEG_PART_MARGIN, right = reach[1] + reach[3] + JPEG_PART_MARGIN;
    top = top < 0 ? 0 : top, left = left < 0 ? 0 : left;
    bottom = bottom > oh ? oh : bottom, right = right > ow ? ow : right;
    reach[0] = top, reach[1] = left, reach[2] = bottom - top, reach[3] = right - left;
    return HERD_OK;
}

static herd_status decode_jpeg(const uint8_t *buf, size_t len, const char *what, int cover_w, int cover_h,
                               jpeg_part *jp, herd_image *img, herd_error *err) {
    struct jpeg_decompress_struct ci;
    jpeg_fail fail;
    uint8_t *volatile pix = NULL; /* assigned after setjmp and needed after a longjmp */
    memset(&ci, 0, sizeof ci);
    ci.err = jpeg_std_error(&fail.mgr);
    fail.mgr.error_exit = jpeg_on_error;
    fail.mgr.emit_message = jpeg_on_message;
    if (setjmp(fail.jump)) {
        jpeg_destroy_decompress(&ci);
        free(pix);
        return herd_fail(err, HERD_EFORMAT, "%s: bad JPEG: %s", what, fail.msg);
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, buf, (unsigned long)len);
    jpeg_read_header(&ci, TRUE);
    if (ci.num_components != 1 && ci.num_components != 3) {
        jpeg_destroy_decompress(&ci);
        return herd_fail(err, HERD_EUNSUPPORTED, "%s: JPEG with %d components (gray and RGB are supported)", what,
                         ci.num_components);
    }
    ci.out_color_space = ci.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    size_t bytes;
    herd_status st = check_pixels(ci.image_width, ci.image_height, (size_t)ci.num_components, len, what, &bytes, err);
    if (st != HERD_OK) {
        jpeg_destroy_decompress(&ci);
        return st;
    }
    if (cover_w > 0 && cover_h > 0) {
        /* 1/8, 2/8, 4/8: the scales libjpeg-turbo has SIMD paths for (others are slower than
         * 8/8); the smallest whose image is still at least twice what covers cover_w x cover_h
         * each way (m/8 of each side, as libjpeg rounds up), so the antialiased filter still
         * shrinks by 2x or more and the result stays close to a full decode + resize. PIL's
         * draft() goes down to the cover itself, faster but noisier (docs/DATA.md). */
        unsigned m = 1;
        while (m < 8 && ((uint64_t)ci.image_width * m < (uint64_t)cover_w * 16 ||
                         (uint64_t)ci.image_height * m < (uint64_t)cover_h * 16))
            m *= 2;
        ci.scale_num = m, ci.scale_denom = 8;
    }
    jpeg_start_decompress(&ci);
    int part[4] = {0, 0, (int)ci.output_height, (int)ci.output_width}; /* top, left, height, width */
    if (jp) {
        jp->full_w = (int)ci.output_width, jp->full_h = (int)ci.output_height;
        if (jp->win && ci.num_components == jp->want_c &&
            (st = jpeg_window_reach(jp, jp->full_w, jp->full_h, cover_w, cover_h, part, err)) != HERD_OK) {
            jpeg_destroy_decompress(&ci);
            return st;
        }
        if (part[3] < (int)ci.output_width) { /* columns: libjpeg widens them to whole blocks */
            JDIMENSION x = (JDIMENSION)part[1], n = (JDIMENSION)part[3];
            jpeg_crop_scanline(&ci, &x, &n);
            part[1] = (int)x, part[3] = (int)n;
        }
    }
    size_t stride = (size_t)ci.output_width * (size_t)ci.output_components;
    st = check_pixels(ci.output_width, (size_t)part[2], (size_t)ci.output_components, len, what, &bytes, err);
    if (st == HERD_OK) st = check_cap(ci.output_width, (size_t)part[2], bytes, what, err);
    /* one row more than the part: the scratch row the last scanline is read into below */
    if (st == HERD_OK && !(pix = malloc(bytes + stride)))
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for %zu pixel bytes", what, bytes);
    if (st != HERD_OK) {
        jpeg_destroy_decompress(&ci);
        return st;
    }
    /* rows outside the part are skipped (entropy-decoded, so corrupt data is still found, but
     * not transformed or converted) */
    if (part[0] > 0) jpeg_skip_scanlines(&ci, (JDIMENSION)part[0]);
    while (ci.output_scanline < (JDIMENSION)(part[0] + part[2])) { /* up to 16 rows a call: whole iMCU rows */
        JSAMPROW rows[16];
        JDIMENSION at = ci.output_scanline - (JDIMENSION)part[0], n = (JDIMENSION)part[2] - at;
        if (n > 16) n = 16;
        for (JDIMENSION i = 0; i < n; i++) rows[i] = pix + (size_t)(at + i) * stride;
        jpeg_read_scanlines(&ci, rows, n);
    }
    int whole = 1;
    if (ci.output_scanline < ci.output_height && jp && jp->skip_tail) {
        whole = 0; /* destroyed unfinished below: libjpeg reads no more of the file */
    } else if (ci.output_scanline < ci.output_height) {
        /* libjpeg-turbo's skip to the very last row returns without decoding what it skips, so
         * corrupt data there (which the whole decode reports) would pass: skip all but the last
         * row, then read that one */
        JDIMENSION left = ci.output_height - ci.output_scanline;
        if (left > 1) jpeg_skip_scanlines(&ci, left - 1);
        JSAMPROW row = pix + (size_t)part[2] * stride;
        jpeg_read_scanlines(&ci, &row, 1);
    }
    if (whole) jpeg_finish_decompress(&ci);
    img->pix = pix;
    img->w = (int)ci.output_width, img->h = part[2], img->c = ci.output_components;
    if (jp) memcpy(jp->part, part, sizeof part), jp->checked = whole;
    jpeg_destroy_decompress(&ci);
    return HERD_OK;
}

herd_status herd_image_decode_reduced(const uint8_t *buf, size_t len, const char *what, int cover_w, int cover_h,
                                      herd_image *img, herd_error *err) {
    memset(img, 0, sizeof *img);
    if (len == 0) return herd_fail(err, HERD_EFORMAT, "%s: empty image (0 bytes)", what);
    if (len >= 8 && buf[0] == 0x89 && buf[1] == 'P') return decode_png(buf, len, what, img, err);
    if (len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8)
        return decode_jpeg(buf, len, what, cover_w, cover_h, NULL, img, err);
    return herd_fail(err, HERD_EFORMAT, "%s: neither a PNG nor a JPEG image", what);
}

herd_status herd_image_decode(const uint8_t *buf, size_t len, const char *what, herd_image *img, herd_error *err) {
    return herd_image_decode_reduced(buf, len, what, 0, 0, img, err);
}

herd_status herd_image_decode_to_u8(const uint8_t *buf, size_t len, const char *what, int c, int h, int w,
                                    uint8_t *out, herd_error *err) {
    herd_image img;
    herd_status st = herd_image_decode_reduced(buf, len, what, w, h, &img, err);
    if (st != HERD_OK) return st;
    st = herd_image_to_u8(&img, c, h, w, out, err);
    herd_image_free(&img);
    return st;
}

void herd_image_free(herd_image *img) {
    free(img->pix);
    img->pix = NULL;
}

/* The region r = {x0, y0, x1, y1} of an iw x ih image that, scaled to cover w x h with the
 * aspect ratio kept, is the center crop (the same pixel mapping as resizing to rw x rh, then
 * cropping). */
static void cover_region(int iw, int ih, int h, int w, double r[4]) {
    double scale = (double)h / ih > (double)w / iw ? (double)h / ih : (double)w / iw;
    long rh = (long)(ih * scale + 0.5), rw = (long)(iw * scale + 0.5);
    if (rh < h) rh = h;
    if (rw < w) rw = w;
    long oy = (rh - h) / 2, ox = (rw - w) / 2;
    double sx = (double)iw / rw, sy = (double)ih / rh;
    r[0] = ox * sx, r[1] = oy * sy, r[2] = (ox + w) * sx, r[3] = (oy + h) * sy;
}

herd_status herd_image_decode_window_to_u8(const uint8_t *buf, size_t len, const char *what, int c, int h, int w,
                                           const int win[4], int *sound, uint8_t *out, herd_error *err) {
    if (!(len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8)) {
        herd_status st = herd_image_decode_to_u8(buf, len, what, c, h, w, out, err);
        if (sound && st == HERD_OK) *sound = 1;
        return st;
    }
    herd_image img;
    jpeg_part jp = {.win = win, .want_c = c, .skip_tail = sound && *sound};
    memset(&img, 0, sizeof img);
    herd_status st = decode_jpeg(buf, len, what, w, h, &jp, &img, err);
    if (st != HERD_OK) return st;
    if (sound) *sound = jp.checked;
    if (img.c == c) {
        double r[4];
        cover_region(jp.full_w, jp.full_h, h, w, r);
        st = herd_resample_u8_part(out, w, h, win, img.pix, jp.full_w, jp.full_h, jp.part, c, r[0], r[1], r[2], r[3],
                                   err);
    } else { /* decoded whole: converted as always */
        st = herd_image_to_u8(&img, c, h, w, out, err);
    }
    herd_image_free(&img);
    return st;
}

herd_status herd_image_to_u8(const herd_image *img, int c, int h, int w, uint8_t *out, herd_error *err) {
    double box[4];
    cover_region(img->w, img->h, h, w, box);
    double x0 = box[0], y0 = box[1], x1 = box[2], y1 = box[3];
    if (img->c == c) /* the decoded pixels as they are */
        return herd_resample_u8(out, w, h, img->pix, img->w, img->h, c, x0, y0, x1, y1, err);
    size_t plane = (size_t)img->w * img->h, n = (size_t)c * h * w;
    float *planes = herd_malloc_array(plane, (size_t)c * sizeof *planes);
    float *res = herd_malloc_array(n, sizeof *res);
    if (!planes || !res) {
        free(planes);
        free(res);
        return herd_fail(err, HERD_ENOMEM, "out of memory converting a %dx%d image", img->w, img->h);
    }
    /* channel conversion into planes of [0, 255] floats: luma (as PIL's convert('L'), before
     * scaling) or gray repeated */
    const uint8_t *restrict p = img->pix;
    float *restrict r = planes, *restrict g = planes + plane, *restrict b = planes + 2 * plane;
    if (img->c == 3)
        for (size_t i = 0; i < plane; i++) r[i] = 0.299f * p[3 * i] + 0.587f * p[3 * i + 1] + 0.114f * p[3 * i + 2];
    else
        for (size_t i = 0; i < plane; i++) r[i] = g[i] = b[i] = p[i];
    herd_status st = herd_resample(res, w, h, planes, img->w, img->h, c, x0, y0, x1, y1, err);
    free(planes);
    if (st == HERD_OK) herd_round_to_u8(out, res, n);
    free(res);
    return st;
}
