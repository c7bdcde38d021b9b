#ifndef CAMEO_JPEG_H
#define CAMEO_JPEG_H
// Owned by the Imaging work: libjpeg decode wrapped so setjmp/longjmp never crosses Swift frames.
#endif
