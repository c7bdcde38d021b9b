// Umbrella header for the only C code Cameo owns.
#include "cameo_signals.h"
#include "cameo_jpeg.h"
