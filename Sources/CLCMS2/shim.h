#include <lcms2.h>

// lcms2's pixel formats are function-like macros, which Swift does not import.
static const cmsUInt32Number cameo_lcms_rgb_8 = TYPE_RGB_8;
static const cmsUInt32Number cameo_lcms_rgba_8 = TYPE_RGBA_8;
