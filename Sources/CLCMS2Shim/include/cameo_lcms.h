#ifndef CAMEO_LCMS_H
#define CAMEO_LCMS_H
// littlecms contexts with a memory budget. A profile is the uploader's to write, and littlecms
// allocates what its tags declare before it reads them: a LUT profile of a few hundred bytes
// can declare a colour lookup grid of 255 points on each of 4 inputs (gigabytes). A context
// made here refuses any allocation that would take its total past the budget, so such a
// profile fails to open (NULL, as any broken profile does) instead of exhausting the worker.

#include <stddef.h>

/// littlecms's cmsContext (its struct declared, not defined), so this header needs no lcms2.h
/// and Swift sees littlecms's declarations from CLCMS2 alone.
typedef struct _cmsContext_struct *cameo_lcms_context;

/// A new littlecms context whose allocations together never pass `budget` bytes, with its
/// error log silenced (errors come back as NULL handles). NULL when it cannot be made. Free it
/// with cameo_lcms_delete_context, after every profile and transform made in it.
cameo_lcms_context cameo_lcms_bounded_context(size_t budget);

/// Largest total the context ever held (for tests: what a profile asked for).
size_t cameo_lcms_context_peak(cameo_lcms_context context);

/// Deletes the context and its budget.
void cameo_lcms_delete_context(cameo_lcms_context context);

#endif
