// See cameo_png.h. The whole libpng sequence, with its setjmp, is in this one function.
#include "cameo_png.h"

#include <png.h>
#include <setjmp.h>
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

static void quiet(png_structp png, png_const_charp message) { (void)png; (void)message; }

// libpng's default prints to stderr; the caller only needs to know it failed.
static void fail(png_structp png, png_const_charp message) {
    (void)message;
    png_longjmp(png, 1);
}

int cameo_png_read_icc(const unsigned char *data, size_t size, unsigned char *out, size_t capacity, size_t *length) {
    if (!data || !out || !length) return 2;
    *length = 0;
    memory_source source = {data, size, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, fail, quiet);
    if (!png) return 2;
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        return 2;
    }
    // Only iCCP is read: every other chunk before the image data (zTXt and iTXt inflate, and a
    // file may hold a thousand of them) is skipped unread, as libpng's simplified API does.
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_AS_DEFAULT, (png_const_bytep) "iCCP", 1);
    png_set_chunk_cache_max(png, 8);
    // A compressed profile may not inflate past the bound (a zip bomb in a chunk).
    png_set_chunk_malloc_max(png, (png_alloc_size_t)capacity + 1024);
    png_set_read_fn(png, &source, read_from_memory);
    png_read_info(png, info);
    png_charp name = NULL;
    int compression = 0;
    png_bytep profile = NULL;
    png_uint_32 profile_length = 0;
    int status = 0;
    if (png_get_iCCP(png, info, &name, &compression, &profile, &profile_length) && profile) {
        if (profile_length > capacity) {
            status = 1;
        } else {
            memcpy(out, profile, profile_length);
            *length = profile_length;
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    return status;
}
