// See cameo_lcms.h. The budget is kept in a header before each block: littlecms's free
// callback is given only the pointer, and the first allocations of a new context are made
// before its user data is set, so each block records the budget it was charged to (or none).
#include "cameo_lcms.h"

#include <lcms2.h>
#include <lcms2_plugin.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t limit;
    size_t used;
    size_t peak;
} budget;

// 16 bytes keep the block as aligned as malloc's own.
typedef union {
    struct {
        size_t size;
        budget *charged;
    } h;
    max_align_t align;
} block_header;

static budget *budget_of(cmsContext context) {
    return context ? (budget *)cmsGetContextUserData(context) : NULL;
}

static void *bounded_malloc(cmsContext context, cmsUInt32Number size) {
    budget *b = budget_of(context);
    if (b && (size > b->limit || b->used > b->limit - size)) return NULL;
    block_header *block = malloc(sizeof(block_header) + size);
    if (!block) return NULL;
    block->h.size = size;
    block->h.charged = b;
    if (b) {
        b->used += size;
        if (b->used > b->peak) b->peak = b->used;
    }
    return block + 1;
}

static void bounded_free(cmsContext context, void *pointer) {
    (void)context;
    if (!pointer) return;
    block_header *block = (block_header *)pointer - 1;
    if (block->h.charged) block->h.charged->used -= block->h.size;
    free(block);
}

static void *bounded_realloc(cmsContext context, void *pointer, cmsUInt32Number size) {
    if (!pointer) return bounded_malloc(context, size);
    block_header *old = (block_header *)pointer - 1;
    void *grown = bounded_malloc(context, size);
    if (!grown) return NULL;
    memcpy(grown, pointer, old->h.size < size ? old->h.size : size);
    bounded_free(context, pointer);
    return grown;
}

static cmsPluginMemHandler bounded_memory = {
    .base = {cmsPluginMagicNumber, 2060, cmsPluginMemHandlerSig, NULL},
    .MallocPtr = bounded_malloc,
    .FreePtr = bounded_free,
    .ReallocPtr = bounded_realloc,
};

cameo_lcms_context cameo_lcms_bounded_context(size_t limit) {
    budget *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->limit = limit;
    cmsContext context = cmsCreateContext(&bounded_memory, b);
    if (!context) {
        free(b);
        return NULL;
    }
    cmsSetLogErrorHandlerTHR(context, NULL);
    return context;
}

size_t cameo_lcms_context_peak(cameo_lcms_context context) {
    budget *b = budget_of(context);
    return b ? b->peak : 0;
}

void cameo_lcms_delete_context(cameo_lcms_context context) {
    if (!context) return;
    budget *b = budget_of(context);
    cmsDeleteContext(context);  // frees through bounded_free, which still needs the budget
    free(b);
}
