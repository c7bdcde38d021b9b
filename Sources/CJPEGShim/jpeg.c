// libjpeg wrapper. libjpeg signals fatal errors through error_exit, which must not return, so the
// only way out is longjmp; Swift refuses setjmp, hence every libjpeg call sequence (setjmp, the
// calls, the cleanup) lives here and Swift only sees a status code and a message buffer.
#include "cameo_jpeg.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

// Real encoders write at most a few dozen scans (libjpeg's simple progression writes 10);
// libjpeg-turbo's TurboJPEG API caps at 500 for the same reason: crafted files with thousands
// of tiny scans make decoding quadratic.
#define CAMEO_JPEG_MAX_SCANS 500

// Upper bound on libjpeg's own working memory. Our pixel limits keep real files far below it;
// the cap stops a crafted header from making libjpeg allocate large coefficient buffers.
#define CAMEO_JPEG_MAX_MEMORY (256L * 1024L * 1024L)

typedef struct cameo_error_mgr {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int status;
    char *message;
} cameo_error_mgr;

typedef struct cameo_progress_mgr {
    struct jpeg_progress_mgr pub;
    cameo_error_mgr *err;
} cameo_progress_mgr;

static void cameo_error_exit(j_common_ptr cinfo) {
    cameo_error_mgr *err = (cameo_error_mgr *)cinfo->err;
    if (err->message) (*cinfo->err->format_message)(cinfo, err->message);
    err->status = CAMEO_JPEG_CORRUPT;
    longjmp(err->jump, 1);
}

// libjpeg reports truncated or damaged entropy data only as warnings (msg_level -1) and then
// goes on decoding gray filler. A partial avatar is worse than a rejection, so any warning is
// fatal; leaving at once also saves decoding the rest of a broken file.
static void cameo_emit_message(j_common_ptr cinfo, int msg_level) {
    if (msg_level < 0) {
        cameo_error_exit(cinfo);
    }
    // Trace messages (msg_level >= 0) are debugging chatter: ignore them.
}

// Never print to stderr: the worker's stderr is its log and messages are reported by status.
static void cameo_output_message(j_common_ptr cinfo) { (void)cinfo; }

static void cameo_progress(j_common_ptr cinfo) {
    cameo_progress_mgr *progress = (cameo_progress_mgr *)cinfo->progress;
    if (cinfo->is_decompressor &&
        ((j_decompress_ptr)cinfo)->input_scan_number > CAMEO_JPEG_MAX_SCANS) {
        cameo_error_mgr *err = progress->err;
        if (err->message) {
            snprintf(err->message, CAMEO_JPEG_MESSAGE_SIZE,
                     "progressive JPEG has more than %d scans", CAMEO_JPEG_MAX_SCANS);
        }
        err->status = CAMEO_JPEG_TOO_MANY_SCANS;
        longjmp(err->jump, 1);
    }
}

static void install_error_mgr(cameo_error_mgr *err, char *message) {
    jpeg_std_error(&err->pub);
    err->pub.error_exit = cameo_error_exit;
    err->pub.emit_message = cameo_emit_message;
    err->pub.output_message = cameo_output_message;
    err->status = CAMEO_JPEG_OK;
    err->message = message;
    if (message) message[0] = '\0';
}

static void copy_header(const struct jpeg_decompress_struct *cinfo, cameo_jpeg_info *info) {
    info->width = (int)cinfo->image_width;
    info->height = (int)cinfo->image_height;
    info->components = cinfo->num_components;
    info->progressive = cinfo->progressive_mode ? 1 : 0;
    info->saw_adobe_marker = cinfo->saw_Adobe_marker ? 1 : 0;
}

static void clear_info(cameo_jpeg_info *info) {
    memset(info, 0, sizeof *info);
}

// The start both entry points share, called after their setjmp (a libjpeg error here jumps
// back to the caller's frame, which is still live): create, bound memory, read the header.
// `progress` (may be NULL) is installed before the first byte is parsed.
static void start_decompress(struct jpeg_decompress_struct *cinfo, const unsigned char *data, size_t size,
                             struct jpeg_progress_mgr *progress, cameo_jpeg_info *info) {
    jpeg_create_decompress(cinfo);
    cinfo->mem->max_memory_to_use = CAMEO_JPEG_MAX_MEMORY;
    cinfo->progress = progress;
    jpeg_mem_src(cinfo, data, (unsigned long)size);
    jpeg_read_header(cinfo, TRUE);
    copy_header(cinfo, info);
}

int cameo_jpeg_read_header(const unsigned char *data, size_t size, cameo_jpeg_info *info) {
    if (!info) return CAMEO_JPEG_BAD_ARGUMENT;
    clear_info(info);
    if (!data || size == 0 || size > (size_t)0x7fffffff) return CAMEO_JPEG_BAD_ARGUMENT;

    struct jpeg_decompress_struct cinfo;
    cameo_error_mgr err;
    install_error_mgr(&err, info->message);
    cinfo.err = &err.pub;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return err.status;
    }
    start_decompress(&cinfo, data, size, NULL, info);
    jpeg_destroy_decompress(&cinfo);
    return CAMEO_JPEG_OK;
}

int cameo_jpeg_read_icc(const unsigned char *data, size_t size, unsigned char *out, size_t capacity,
                        size_t *length, cameo_jpeg_info *info) {
    if (!info || !length) return CAMEO_JPEG_BAD_ARGUMENT;
    clear_info(info);
    *length = 0;
    if (!data || !out || size == 0 || size > (size_t)0x7fffffff) return CAMEO_JPEG_BAD_ARGUMENT;

    struct jpeg_decompress_struct cinfo;
    cameo_error_mgr err;
    JOCTET *profile = NULL;
    install_error_mgr(&err, info->message);
    cinfo.err = &err.pub;
    if (setjmp(err.jump)) {
        free(profile);
        jpeg_destroy_decompress(&cinfo);
        return err.status;
    }
    jpeg_create_decompress(&cinfo);
    cinfo.mem->max_memory_to_use = CAMEO_JPEG_MAX_MEMORY;
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    // Kept whole (a segment is at most 64 KB), so the profile can be put back together.
    jpeg_save_markers(&cinfo, JPEG_APP0 + 2, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);
    copy_header(&cinfo, info);
    unsigned int profile_length = 0;
    int status = CAMEO_JPEG_OK;
    if (jpeg_read_icc_profile(&cinfo, &profile, &profile_length)) {
        if (profile_length > capacity) {
            status = CAMEO_JPEG_BUFFER_TOO_SMALL;
        } else {
            memcpy(out, profile, profile_length);
            *length = profile_length;
        }
    }
    free(profile);
    jpeg_destroy_decompress(&cinfo);
    return status;
}

// Adobe (Photoshop) CMYK JPEGs store every channel inverted (255 = no ink), and libjpeg hands
// them back as stored. With the marker, R = C' * K' / 255 on the stored values; without it the
// values are plain ink amounts, so invert first.
static void cmyk_row_to_rgb(const JSAMPLE *in, unsigned char *out, JDIMENSION width, int inverted) {
    for (JDIMENSION x = 0; x < width; x++) {
        unsigned c = in[0], m = in[1], y = in[2], k = in[3];
        if (!inverted) {
            c = 255 - c; m = 255 - m; y = 255 - y; k = 255 - k;
        }
        // (a * b + 127) / 255 rounds to nearest.
        out[0] = (unsigned char)((c * k + 127) / 255);
        out[1] = (unsigned char)((m * k + 127) / 255);
        out[2] = (unsigned char)((y * k + 127) / 255);
        in += 4;
        out += 3;
    }
}

// Stored CMYK values as ink amounts (0 = no ink), in place: Adobe files store them inverted.
static void cmyk_row_to_ink(JSAMPLE *row, JDIMENSION width, int inverted) {
    if (!inverted) return;
    for (size_t i = 0; i < (size_t)width * 4; i++) row[i] = (JSAMPLE)(255 - row[i]);
}

int cameo_jpeg_decode_rgb(const unsigned char *data, size_t size, int scale_denom,
                          cameo_jpeg_cmyk_converter cmyk_converter, void *context,
                          unsigned char *out, size_t out_capacity, cameo_jpeg_info *info) {
    if (!info) return CAMEO_JPEG_BAD_ARGUMENT;
    clear_info(info);
    if (!data || !out || size == 0 || size > (size_t)0x7fffffff) return CAMEO_JPEG_BAD_ARGUMENT;
    if (scale_denom != 1 && scale_denom != 2 && scale_denom != 4 && scale_denom != 8) {
        return CAMEO_JPEG_BAD_ARGUMENT;
    }

    struct jpeg_decompress_struct cinfo;
    cameo_error_mgr err;
    cameo_progress_mgr progress;
    install_error_mgr(&err, info->message);
    cinfo.err = &err.pub;
    if (setjmp(err.jump)) {
        // Everything libjpeg allocated (including the CMYK row buffer from its pool) goes here.
        jpeg_destroy_decompress(&cinfo);
        return err.status;
    }
    progress.pub.progress_monitor = cameo_progress;
    progress.err = &err;
    start_decompress(&cinfo, data, size, &progress.pub, info);

    int cmyk = 0;
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
    case JCS_YCbCr:
    case JCS_RGB:
        // libjpeg-turbo expands gray to RGB itself, so Swift only ever sees 3 channels.
        cinfo.out_color_space = JCS_RGB;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        // libjpeg converts YCCK to CMYK; CMYK to RGB is ours (below).
        cinfo.out_color_space = JCS_CMYK;
        cmyk = 1;
        break;
    default:
        snprintf(info->message, CAMEO_JPEG_MESSAGE_SIZE, "unsupported JPEG colour space %d",
                 (int)cinfo.jpeg_color_space);
        jpeg_destroy_decompress(&cinfo);
        return CAMEO_JPEG_UNSUPPORTED;
    }
    cinfo.scale_num = 1;
    cinfo.scale_denom = (unsigned int)scale_denom;
    // Accurate integer IDCT and fancy upsampling: this is a one-off quality path, not a viewer.
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;

    jpeg_calc_output_dimensions(&cinfo);
    info->output_width = (int)cinfo.output_width;
    info->output_height = (int)cinfo.output_height;
    size_t row_bytes = (size_t)cinfo.output_width * 3;
    if (cinfo.output_height != 0 && row_bytes > out_capacity / cinfo.output_height) {
        snprintf(info->message, CAMEO_JPEG_MESSAGE_SIZE, "output buffer too small for %ux%u",
                 (unsigned)cinfo.output_width, (unsigned)cinfo.output_height);
        jpeg_destroy_decompress(&cinfo);
        return CAMEO_JPEG_BUFFER_TOO_SMALL;
    }

    jpeg_start_decompress(&cinfo);
    JSAMPARRAY cmyk_row = NULL;
    if (cmyk) {
        cmyk_row = (*cinfo.mem->alloc_sarray)((j_common_ptr)&cinfo, JPOOL_IMAGE,
                                              cinfo.output_width * 4, 1);
    }
    int inverted = cinfo.saw_Adobe_marker ? 1 : 0;
    while (cinfo.output_scanline < cinfo.output_height) {
        unsigned char *dest = out + (size_t)cinfo.output_scanline * row_bytes;
        if (cmyk) {
            if (jpeg_read_scanlines(&cinfo, cmyk_row, 1) != 1) break;
            if (cmyk_converter) {
                cmyk_row_to_ink(cmyk_row[0], cinfo.output_width, inverted);
                cmyk_converter(context, cmyk_row[0], dest, cinfo.output_width);
            } else {
                cmyk_row_to_rgb(cmyk_row[0], dest, cinfo.output_width, inverted);
            }
        } else {
            JSAMPROW row = dest;
            if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) break;
        }
    }
    if (cinfo.output_scanline < cinfo.output_height) {
        // Suspension cannot happen with a memory source; treat it as damage, never as success.
        snprintf(info->message, CAMEO_JPEG_MESSAGE_SIZE, "decoder stopped at line %u of %u",
                 (unsigned)cinfo.output_scanline, (unsigned)cinfo.output_height);
        jpeg_destroy_decompress(&cinfo);
        return CAMEO_JPEG_CORRUPT;
    }
    // finish_decompress reads to EOI, so damage after the last scanline is still reported.
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return CAMEO_JPEG_OK;
}

// Destination writing straight into the caller's buffer: nothing to free on the error path
// (jpeg_mem_dest would leak its growing buffer when error_exit longjmps mid-write).
typedef struct cameo_dest_mgr {
    struct jpeg_destination_mgr pub;
    cameo_error_mgr *err;
    size_t capacity;
} cameo_dest_mgr;

static void cameo_init_destination(j_compress_ptr cinfo) { (void)cinfo; }

static boolean cameo_empty_output_buffer(j_compress_ptr cinfo) {
    cameo_dest_mgr *dest = (cameo_dest_mgr *)cinfo->dest;
    if (dest->err->message) {
        snprintf(dest->err->message, CAMEO_JPEG_MESSAGE_SIZE, "JPEG larger than %zu bytes",
                 dest->capacity);
    }
    dest->err->status = CAMEO_JPEG_BUFFER_TOO_SMALL;
    longjmp(dest->err->jump, 1);
    return FALSE;
}

static void cameo_term_destination(j_compress_ptr cinfo) { (void)cinfo; }

int cameo_jpeg_encode(const unsigned char *pixels, int width, int height, int components,
                      int quality, int progressive, unsigned char *out, size_t out_capacity,
                      size_t *out_size, char message[CAMEO_JPEG_MESSAGE_SIZE]) {
    if (message) message[0] = '\0';
    if (out_size) *out_size = 0;
    if (!pixels || !out || !out_size || out_capacity == 0 || width <= 0 || height <= 0 ||
        (components != 1 && components != 3 && components != 4)) {
        return CAMEO_JPEG_BAD_ARGUMENT;
    }

    struct jpeg_compress_struct cinfo;
    cameo_error_mgr err;
    cameo_dest_mgr dest;
    install_error_mgr(&err, message);
    cinfo.err = &err.pub;
    if (setjmp(err.jump)) {
        jpeg_destroy_compress(&cinfo);
        return err.status;
    }
    jpeg_create_compress(&cinfo);
    dest.pub.init_destination = cameo_init_destination;
    dest.pub.empty_output_buffer = cameo_empty_output_buffer;
    dest.pub.term_destination = cameo_term_destination;
    dest.pub.next_output_byte = out;
    dest.pub.free_in_buffer = out_capacity;
    dest.err = &err;
    dest.capacity = out_capacity;
    cinfo.dest = &dest.pub;
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = components;
    cinfo.in_color_space = components == 1 ? JCS_GRAYSCALE : components == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&cinfo);
    if (components == 4) {
        // YCCK is what Photoshop writes for CMYK; libjpeg adds the Adobe marker for it.
        jpeg_set_colorspace(&cinfo, JCS_YCCK);
    }
    jpeg_set_quality(&cinfo, quality, TRUE);
    if (progressive) jpeg_simple_progression(&cinfo);
    jpeg_start_compress(&cinfo, TRUE);
    size_t row_bytes = (size_t)width * (size_t)components;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * row_bytes);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    *out_size = out_capacity - dest.pub.free_in_buffer;
    jpeg_destroy_compress(&cinfo);
    return CAMEO_JPEG_OK;
}
