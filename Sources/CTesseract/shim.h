#ifndef LOOM_CTESSERACT_SHIM_H
#define LOOM_CTESSERACT_SHIM_H
// Tesseract's plain C API. Not tesseract.pc: it adds -larchive -lcurl and not -llept (../shared/NATIVE.md).
#include <tesseract/capi.h>
#endif
