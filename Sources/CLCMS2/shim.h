#include <lcms2.h>

// lcms2's pixel formats are function-like macros, which Swift does not import.
static const cmsUInt32Number cameo_lcms_rgb_8 = TYPE_RGB_8;
static const cmsUInt32Number cameo_lcms_rgba_8 = TYPE_RGBA_8;
static const cmsUInt32Number cameo_lcms_rgb_16 = TYPE_RGB_16;
static const cmsUInt32Number cameo_lcms_rgba_16 = TYPE_RGBA_16;
// Ink amounts as stored after the JPEG shim's normalisation: 0 is no ink.
static const cmsUInt32Number cameo_lcms_cmyk_8 = TYPE_CMYK_8;
