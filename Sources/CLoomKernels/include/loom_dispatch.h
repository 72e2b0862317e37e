#ifndef LOOM_DISPATCH_H
#define LOOM_DISPATCH_H
// Which instruction-set path the hand-written kernels take (loom_kernels.h, loom_bert.h). Every dispatched kernel
// has a plain C loop (the portable path) and may have variants for wider vector units; each picks the widest
// variant it has that is not above the path in force. The path in force is the best this CPU runs, lowered by the
// environment variable LOOM_KERNELS (portable, avx2, avx512 or vnni) so every path a CPU supports can be run and
// tested on it; a request above what the CPU runs is capped, with one line on stderr.

/// The paths, in order: each includes the ones before it.
enum {
    LOOM_PATH_PORTABLE = 0, // the plain C loops as compiled for baseline x86-64 (or any other target)
    LOOM_PATH_AVX2 = 1,     // AVX2 + FMA
    LOOM_PATH_AVX512 = 2,   // AVX-512 F, DQ, BW and VL
    LOOM_PATH_VNNI = 3,     // AVX512 + AVX-512 VNNI
};

/// The widest path this CPU runs.
int loom_cpu_path(void);

/// The path the kernels take now (LOOM_KERNELS read once, capped at loom_cpu_path()).
int loom_kernel_path(void);

/// Sets the path the kernels take (capped at loom_cpu_path()); a negative value restores LOOM_KERNELS' choice.
/// Returns the path in force before. For tests, which run each path against the plain reference in turn.
int loom_set_kernel_path(int path);

/// "portable", "avx2", "avx512" or "vnni"; NULL for an unknown path.
const char *loom_path_name(int path);
#endif
