#include "loom_dispatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"portable", "avx2", "avx512", "vnni"};

const char *loom_path_name(int path) { return path >= 0 && path <= LOOM_PATH_VNNI ? names[path] : NULL; }

int loom_cpu_path(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return LOOM_PATH_PORTABLE;
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")))
        return LOOM_PATH_AVX2;
    return __builtin_cpu_supports("avx512vnni") ? LOOM_PATH_VNNI : LOOM_PATH_AVX512;
#else
    return LOOM_PATH_PORTABLE;
#endif
}

// LOOM_KERNELS' choice, capped at the CPU's.
static int from_environment(void) {
    int cpu = loom_cpu_path();
    const char *want = getenv("LOOM_KERNELS");
    if (!want || !*want) return cpu;
    for (int p = 0; p <= LOOM_PATH_VNNI; p++) {
        if (strcmp(want, names[p]) != 0) continue;
        if (p > cpu)
            fprintf(stderr, "loom: LOOM_KERNELS=%s: this CPU runs at most the %s kernels; using those\n", want,
                    names[cpu]);
        return p < cpu ? p : cpu;
    }
    fprintf(stderr, "loom: LOOM_KERNELS=%s is not one of portable, avx2, avx512, vnni; using the %s kernels\n", want,
            names[cpu]);
    return cpu;
}

// -1 until first read. Read and written with relaxed atomics: every thread computes the same value, and tests set
// it between runs, never while kernels run.
static int in_force = -1;

int loom_kernel_path(void) {
    int p = __atomic_load_n(&in_force, __ATOMIC_RELAXED);
    if (p < 0) {
        p = from_environment();
        __atomic_store_n(&in_force, p, __ATOMIC_RELAXED);
    }
    return p;
}

int loom_set_kernel_path(int path) {
    int before = loom_kernel_path();
    int cpu = loom_cpu_path();
    int p = path < 0 ? from_environment() : (path < cpu ? path : cpu);
    __atomic_store_n(&in_force, p, __ATOMIC_RELAXED);
    return before;
}
