#ifndef LOOM_COPENBLAS_SHIM_H
#define LOOM_COPENBLAS_SHIM_H
// OpenBLAS's CBLAS (pkg-config openblas; the header lives under its openblas-pthread include directory).
#include <cblas.h>
#include <stddef.h>

// LAPACK's symmetric eigensolver, which Debian's libopenblas exports (its headers do not declare LAPACK). Fortran
// calling convention: every argument by pointer, and the lengths of the two character arguments appended (gfortran's
// hidden arguments, each 1 here).
void ssyevd_(const char *jobz, const char *uplo, const int *n, float *a, const int *lda, float *w, float *work,
             const int *lwork, int *iwork, const int *liwork, int *info, size_t jobz_len, size_t uplo_len);
#endif
