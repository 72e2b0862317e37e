#ifndef LOOM_CTESSERACT_SHIM_H
#define LOOM_CTESSERACT_SHIM_H
// Tesseract's plain C API. Not tesseract.pc: it adds -larchive -lcurl and not -llept (../shared/NATIVE.md).
#include <tesseract/capi.h>
// Leptonica (linked with tesseract) for preprocessing page images before OCR (binarisation, deskew, scaling).
#include <leptonica/allheaders.h>

// An 8-bit grey leptonica image from rows of bytes (leptonica packs pixels into 32-bit words in its own byte order,
// which only its SET_DATA_BYTE macro knows; macros do not import into Swift). Nil when leptonica cannot allocate.
static inline PIX *loom_pix_from_gray(const unsigned char *pixels, int width, int height) {
    PIX *pix = pixCreate(width, height, 8);
    if (!pix) return NULL;
    l_uint32 *data = pixGetData(pix);
    int wpl = pixGetWpl(pix);
    for (int y = 0; y < height; y++) {
        l_uint32 *line = data + (size_t)y * wpl;
        const unsigned char *row = pixels + (size_t)y * width;
        for (int x = 0; x < width; x++) SET_DATA_BYTE(line, x, row[x]);
    }
    return pix;
}

// pixDestroy takes PIX ** and clears it; this takes the pointer (nil is fine).
static inline void loom_pix_destroy(PIX *pix) { if (pix) pixDestroy(&pix); }
#endif
