#ifndef LOOM_COPENBLAS_SHIM_H
#define LOOM_COPENBLAS_SHIM_H
// OpenBLAS's CBLAS (pkg-config openblas; the header lives under its openblas-pthread include directory).
#include <cblas.h>
#endif
