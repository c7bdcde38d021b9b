#ifndef CAMEO_PNG_H
#define CAMEO_PNG_H
// libpng's chunk API (not the simplified one the decoder uses) for the one thing the simplified
// API does not give: the embedded ICC profile. Its errors longjmp, so the sequence lives here.

#include <stddef.h>

/// The iCCP chunk's profile, decompressed by libpng, copied into `out`. Returns 0 with
/// `*length` its size (0: the file has none, or libpng found it unusable); 1 when it is larger
/// than `capacity`; 2 when the file could not be read up to its first image data.
int cameo_png_read_icc(const unsigned char *data, size_t size, unsigned char *out, size_t capacity, size_t *length);

#endif
