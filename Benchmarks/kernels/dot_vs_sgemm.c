// The exact-search block of loom cluster (256 rows x 14,836 rows x 512 dimensions, the chunk count of
// pubmed20n0014): CLoomKernels' loom_dot_block against OpenBLAS cblas_sgemm on one thread, interleaved twice.
//   clang -O2 -ISources/CLoomKernels/include -I/usr/include/x86_64-linux-gnu/openblas-pthread \
//     Benchmarks/kernels/dot_vs_sgemm.c Sources/CLoomKernels/kernels.c -lopenblas -o /tmp/dot_vs_sgemm && /tmp/dot_vs_sgemm
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <cblas.h>
#include "loom_kernels.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(void){
  size_t n=14836, dim=512, rows=256, reps=8;
  float *v=malloc(n*dim*4), *o=malloc(rows*n*4);
  srand(1); for(size_t i=0;i<n*dim;i++) v[i]=rand()/(float)RAND_MAX-0.5f;
  openblas_set_num_threads(1);
  for(int round=0; round<2; round++){
    double t=now(); for(size_t r=0;r<reps;r++) loom_dot_block(v+r*rows*dim, rows, v, n, dim, o);
    double a=now()-t;
    t=now(); for(size_t r=0;r<reps;r++) cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasTrans,rows,n,dim,1,v+r*rows*dim,dim,v,dim,0,o,n);
    double b=now()-t;
    double fl=2.0*rows*n*dim*reps;
    printf("loom_dot_block %.2f s (%.1f GFLOP/s), cblas_sgemm %.2f s (%.1f GFLOP/s, %s), ratio %.2fx\n", a, fl/a/1e9, b, fl/b/1e9, openblas_get_corename(), a/b);
  }
}
