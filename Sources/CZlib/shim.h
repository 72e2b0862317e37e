#ifndef LOOM_CZLIB_SHIM_H
#define LOOM_CZLIB_SHIM_H
#include <stddef.h>
#include <zlib.h>

// glibc's memmem is declared only under _GNU_SOURCE, which Swift's Glibc module does not set. The streaming
// XML splitter that reads through zlib uses it to find element tags.
void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen);
#endif
