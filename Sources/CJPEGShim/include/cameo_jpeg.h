#ifndef CAMEO_JPEG_H
#define CAMEO_JPEG_H
// Owned by the Imaging work: libjpeg decode wrapped so setjmp/longjmp never crosses Swift frames.
//
// libjpeg reports fatal errors by calling error_exit, which must not return; the only way out is
// longjmp. Swift cannot call setjmp, and a longjmp across Swift frames would skip Swift cleanup,
// so every libjpeg call sequence lives in jpeg.c: it does setjmp, the whole sequence, and the
// cleanup, and hands back a status code plus a fixed-size message. No libjpeg type appears here,
// so Swift code importing this header never sees libjpeg structs.

#include <stddef.h>

/// Size of the message buffer in cameo_jpeg_info (libjpeg's JMSG_LENGTH_MAX is 200).
#define CAMEO_JPEG_MESSAGE_SIZE 200

/// Status codes returned by every cameo_jpeg_* function.
enum {
    /// Success.
    CAMEO_JPEG_OK = 0,
    /// libjpeg raised an error or a warning (warnings mean truncated or damaged data).
    CAMEO_JPEG_CORRUPT = 1,
    /// The caller's output buffer is smaller than the decoded image.
    CAMEO_JPEG_BUFFER_TOO_SMALL = 2,
    /// A colour space we do not convert (anything but gray, RGB/YCbCr, CMYK/YCCK).
    CAMEO_JPEG_UNSUPPORTED = 3,
    /// A progressive file with more scans than any real encoder writes (a CPU bomb).
    CAMEO_JPEG_TOO_MANY_SCANS = 4,
    /// An argument was out of range (null pointer, bad scale, empty input).
    CAMEO_JPEG_BAD_ARGUMENT = 5,
};

/// What the shim learned about a JPEG. Filled as far as the call got, so a failed decode still
/// tells the caller the header it saw.
typedef struct cameo_jpeg_info {
    /// Stored (unrotated) image size in pixels, from the SOF marker.
    int width;
    int height;
    /// Components in the file: 1 gray, 3 YCbCr/RGB, 4 CMYK/YCCK.
    int components;
    /// 1 when the file is progressive (SOF2).
    int progressive;
    /// 1 when an Adobe APP14 marker was seen (CMYK data is then stored inverted).
    int saw_adobe_marker;
    /// Size of the decoded output after DCT scaling; the output is always 3-byte RGB.
    int output_width;
    int output_height;
    /// NUL-terminated libjpeg message for failures; empty on success.
    char message[CAMEO_JPEG_MESSAGE_SIZE];
} cameo_jpeg_info;

/// Parses the JPEG markers up to the first scan (jpeg_read_header) without allocating any pixel
/// buffer. Returns CAMEO_JPEG_OK and fills width/height/components/progressive/saw_adobe_marker.
int cameo_jpeg_read_header(const unsigned char *data, size_t size, cameo_jpeg_info *info);

/// Converts `pixels` CMYK pixels to packed RGB: `ink` holds 4 bytes a pixel, ink amounts
/// (0 is no ink, whatever the file stored), `rgb` 3 bytes a pixel. It must not call back into
/// libjpeg (it runs between two scanline reads).
typedef void (*cameo_jpeg_cmyk_converter)(void *context, const void *ink, void *rgb, size_t pixels);

/// Decodes a whole JPEG to packed RGB (3 bytes per pixel, no row padding) into `out`.
/// `scale_denom` is 1, 2, 4 or 8: libjpeg's DCT scaling, output size ceil(size / scale_denom).
/// Gray is expanded to RGB. CMYK/YCCK rows go through `cmyk_converter` (with `context`) when
/// it is given, a row at a time, so no CMYK copy of the image is ever held; without it they
/// are converted naively (R = (1 - C)(1 - K), Adobe-inverted data handled).
/// `out_capacity` must be at least output_width * output_height * 3, else
/// CAMEO_JPEG_BUFFER_TOO_SMALL. Any libjpeg warning aborts with CAMEO_JPEG_CORRUPT.
int cameo_jpeg_decode_rgb(const unsigned char *data, size_t size, int scale_denom,
                          cameo_jpeg_cmyk_converter cmyk_converter, void *context,
                          unsigned char *out, size_t out_capacity, cameo_jpeg_info *info);

/// The embedded ICC profile: the APP2 "ICC_PROFILE" segments, reassembled in their order
/// (jpeg_read_icc_profile), copied into `out`. CAMEO_JPEG_OK with `*length` its size, 0 when
/// the file has none (or its segments do not fit together); CAMEO_JPEG_BUFFER_TOO_SMALL when
/// it is larger than `capacity` (the caller's bound).
int cameo_jpeg_read_icc(const unsigned char *data, size_t size, unsigned char *out, size_t capacity,
                        size_t *length, cameo_jpeg_info *info);

/// Encodes packed pixels to a baseline or progressive JPEG; used to generate test inputs.
/// `components` is 1 (gray), 3 (RGB) or 4 (CMYK, written as Adobe YCCK with inverted values as
/// Photoshop does; pass the inverted values). The JPEG is written straight into `out`
/// (`*out_size` receives its length); CAMEO_JPEG_BUFFER_TOO_SMALL when it does not fit.
int cameo_jpeg_encode(const unsigned char *pixels, int width, int height, int components,
                      int quality, int progressive, unsigned char *out, size_t out_capacity,
                      size_t *out_size, char message[CAMEO_JPEG_MESSAGE_SIZE]);

#endif
