// See cameo_png.h. Each libpng sequence, with its setjmp, is in one function here.
#include "cameo_png.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const unsigned char *data;
    size_t size;
    size_t offset;
} memory_source;

static void read_from_memory(png_structp png, png_bytep out, png_size_t count) {
    memory_source *source = (memory_source *)png_get_io_ptr(png);
    if (count > source->size - source->offset) png_error(png, "truncated");
    memcpy(out, source->data + source->offset, count);
    source->offset += count;
}

// libpng's defaults print to stderr; the caller only needs to know it failed. A warning means
// damaged data: a partial avatar is worse than a rejection.
static void quiet(png_structp png, png_const_charp message) { (void)png; (void)message; }

static void fail(png_structp png, png_const_charp message) {
    (void)message;
    png_longjmp(png, 1);
}

// The colour chunks are read; every other ancillary chunk is skipped unread, as libpng's
// simplified API does (tRNS and the critical chunks are always handled).
static const png_byte colour_chunks[] = {'c', 'H', 'R', 'M', '\0', 'g', 'A', 'M', 'A', '\0',
                                         'i', 'C', 'C', 'P', '\0', 's', 'R', 'G', 'B', '\0'};

// Creates the read struct with the limits every entry point shares: the colour chunks are
// read only when `colour` is set, and no chunk may inflate past `chunk_capacity`.
static png_structp start_read(memory_source *source, int colour, size_t chunk_capacity) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, fail, quiet);
    if (!png) return NULL;
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    if (colour) png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_AS_DEFAULT, colour_chunks, 4);
    png_set_chunk_cache_max(png, 8);
    png_set_chunk_malloc_max(png, (png_alloc_size_t)chunk_capacity + 1024);
    png_set_read_fn(png, source, read_from_memory);
    return png;
}

// The transforms every decode shares: everything becomes 8 or 16-bit RGB(A).
static void expand_to_rgb(png_structp png, png_infop info) {
    int type = png_get_color_type(png, info);
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
}

static int has_alpha(png_structp png, png_infop info) {
    return (png_get_color_type(png, info) & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS);
}

int cameo_png_read_colour(const unsigned char *data, size_t size, unsigned char *profile, size_t capacity,
                          cameo_png_colour *colour) {
    if (!data || !profile || !colour) return CAMEO_PNG_BAD_ARGUMENT;
    memset(colour, 0, sizeof *colour);
    memory_source source = {data, size, 0};
    png_structp png = start_read(&source, 1, capacity);
    if (!png) return CAMEO_PNG_CORRUPT;
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        return CAMEO_PNG_CORRUPT;
    }
    png_read_info(png, info);
    colour->has_alpha = has_alpha(png, info) ? 1 : 0;
    colour->bit_depth = png_get_bit_depth(png, info) == 16 ? 16 : 8;
    colour->interlaced = png_get_interlace_type(png, info) != PNG_INTERLACE_NONE;
    int status = CAMEO_PNG_OK;
    png_charp name = NULL;
    int compression = 0;
    png_bytep icc = NULL;
    png_uint_32 icc_length = 0;
    if (png_get_iCCP(png, info, &name, &compression, &icc, &icc_length) && icc) {
        if (icc_length > capacity) {
            status = CAMEO_PNG_TOO_LARGE;
        } else {
            memcpy(profile, icc, icc_length);
            colour->profile_length = icc_length;
        }
    }
    int intent = 0;
    colour->has_srgb = png_get_sRGB(png, info, &intent) ? 1 : 0;
    png_fixed_point gamma = 0;
    if (png_get_gAMA_fixed(png, info, &gamma) && gamma > 0) colour->gamma = (uint32_t)gamma;
    png_fixed_point c[8];
    if (png_get_cHRM_fixed(png, info, &c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6], &c[7])) {
        int positive = 1;
        for (int i = 0; i < 8; i++) positive &= c[i] > 0;
        if (positive) {
            colour->has_chrm = 1;
            colour->white_x = (uint32_t)c[0]; colour->white_y = (uint32_t)c[1];
            colour->red_x = (uint32_t)c[2];   colour->red_y = (uint32_t)c[3];
            colour->green_x = (uint32_t)c[4]; colour->green_y = (uint32_t)c[5];
            colour->blue_x = (uint32_t)c[6];  colour->blue_y = (uint32_t)c[7];
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    return status;
}

int cameo_png_decode(const unsigned char *data, size_t size, int width, int height, int alpha,
                     cameo_png_row_converter convert16, void *context, unsigned char *out, size_t capacity) {
    if (!data || !out || width <= 0 || height <= 0) return CAMEO_PNG_BAD_ARGUMENT;
    size_t channels = alpha ? 4 : 3;
    size_t row_bytes = (size_t)width * channels;
    if (row_bytes > capacity / (size_t)height) return CAMEO_PNG_TOO_LARGE;
    memory_source source = {data, size, 0};
    // The colour chunks were read by cameo_png_read_colour; pixel data needs none of them.
    png_structp png = start_read(&source, 0, 1 << 20);
    if (!png) return CAMEO_PNG_CORRUPT;
    png_infop info = png_create_info_struct(png);
    // Volatile: set after setjmp and freed on its path.
    uint16_t *volatile wide_row = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        free(wide_row);
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        return CAMEO_PNG_CORRUPT;
    }
    png_set_user_limits(png, (png_uint_32)width, (png_uint_32)height);
    png_read_info(png, info);
    if ((int)png_get_image_width(png, info) != width || (int)png_get_image_height(png, info) != height ||
        has_alpha(png, info) != (alpha != 0)) {
        png_error(png, "header changed between probe and decode");
    }
    expand_to_rgb(png, info);
    int wide = png_get_bit_depth(png, info) == 16 && convert16 &&
               png_get_interlace_type(png, info) == PNG_INTERLACE_NONE;
    if (png_get_bit_depth(png, info) == 16) {
        if (wide) {
            // PNG stores 16-bit samples big-endian; the converter takes them as the host does.
            if (*(const unsigned char *)&(uint16_t){1} == 1) png_set_swap(png);
        } else {
            png_set_scale_16(png);  // rounds, where strip_16 would truncate
        }
    }
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_channels(png, info) != channels) png_error(png, "unexpected channel count");
    if (wide) {
        wide_row = malloc(row_bytes * sizeof(uint16_t));
        if (!wide_row) png_error(png, "out of memory");
        for (int y = 0; y < height; y++) {
            png_read_row(png, (png_bytep)wide_row, NULL);
            convert16(context, wide_row, out + (size_t)y * row_bytes, (size_t)width);
        }
    } else {
        // Adam7 needs every pass over the whole image; libpng combines them into the rows.
        for (int pass = 0; pass < passes; pass++) {
            for (int y = 0; y < height; y++) png_read_row(png, out + (size_t)y * row_bytes, NULL);
        }
    }
    png_read_end(png, NULL);
    free(wide_row);
    png_destroy_read_struct(&png, &info, NULL);
    return CAMEO_PNG_OK;
}
