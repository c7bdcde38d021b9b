#ifndef CAMEO_PNG_H
#define CAMEO_PNG_H
// libpng's full API, for what the simplified one cannot do: read the colour chunks (iCCP,
// sRGB, cHRM, gAMA) as the file states them, and hand over the stored values untouched by
// gamma correction (at 16 bits where the file has them), so that colour management has one
// source of truth. libpng's errors longjmp, so each whole sequence lives in png.c.

#include <stddef.h>
#include <stdint.h>

/// Status codes of the cameo_png_* functions.
enum {
    CAMEO_PNG_OK = 0,
    /// The profile (or image) does not fit the caller's buffer.
    CAMEO_PNG_TOO_LARGE = 1,
    /// libpng refused the file (damaged, truncated, or against the limits).
    CAMEO_PNG_CORRUPT = 2,
    /// An argument was out of range.
    CAMEO_PNG_BAD_ARGUMENT = 3,
};

/// What a PNG says about its colours, read up to its first image data.
typedef struct cameo_png_colour {
    /// 1 when the decoded pixels carry alpha (an alpha channel or a tRNS chunk).
    int has_alpha;
    /// 16 or 8 (1, 2 and 4-bit files are expanded to 8).
    int bit_depth;
    /// 1 for Adam7 files.
    int interlaced;
    /// Length of the iCCP profile copied out; 0 when there is none.
    size_t profile_length;
    /// 1 when an sRGB chunk is present.
    int has_srgb;
    /// gAMA as stored (file gamma × 100000, e.g. 45455); 0 when absent.
    uint32_t gamma;
    /// 1 when cHRM is present: white and primaries as (x, y) × 100000.
    int has_chrm;
    uint32_t white_x, white_y, red_x, red_y, green_x, green_y, blue_x, blue_y;
} cameo_png_colour;

/// Reads the header and the colour chunks; the iCCP profile, decompressed, goes into
/// `profile` (at most `capacity` bytes: CAMEO_PNG_TOO_LARGE and no profile when larger; a
/// profile that would inflate past it is never inflated). Every other ancillary chunk is
/// skipped unread (a thousand zTXt chunks must not cost a thousand inflations).
int cameo_png_read_colour(const unsigned char *data, size_t size, unsigned char *profile, size_t capacity,
                          cameo_png_colour *colour);

/// Converts `pixels` pixels of 16-bit samples (native byte order; 3 or 4 a pixel, as the
/// image has alpha) to 8-bit ones in `out`. Must not call back into libpng.
/// (The same shape as CJPEGShim's CMYK converter, so one Swift callback serves both.)
typedef void (*cameo_png_row_converter)(void *context, const void *in, void *out, size_t pixels);

/// Decodes to packed 8-bit RGB, or RGBA when `has_alpha`: palette, gray, tRNS and low bit
/// depths expanded, no gamma applied. A 16-bit, non-interlaced file goes through `convert16`
/// (with `context`) a row at a time when it is given, so its 16 bits reach colour management;
/// otherwise 16-bit samples are rounded to 8. `width` and `height` are the sizes the caller
/// checked against its limits; a file that says otherwise is CAMEO_PNG_CORRUPT.
int cameo_png_decode(const unsigned char *data, size_t size, int width, int height, int has_alpha,
                     cameo_png_row_converter convert16, void *context, unsigned char *out, size_t capacity);

#endif
