#ifndef LOOM_CLIBXML2_SHIM_H
#define LOOM_CLIBXML2_SHIM_H
// libxml2 for Swift. Debian's libxml2 is built with ICU, and its encoding.h includes <unicode/ucnv.h>, whose
// types clash with Foundation's own ICU in any module that imports both. Define ucnv.h's include guard and
// forward-declare the two ICU types encoding.h needs (only as pointers and a buffer we never touch).
#include <stdint.h>
#define UCNV_H 1
typedef struct UConverter UConverter;
typedef uint16_t UChar;

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/SAX2.h>
#include <libxml/xmlreader.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlIO.h>

// xmlFree is a macro-ish global function pointer: wrap it.
static inline void loom_xml_free(void *p) { xmlFree(p); }

// A loader that refuses every external entity and DTD: defence in depth on top of XML_PARSE_NONET and never
// asking for entity substitution or DTD loading.
static xmlParserInputPtr loom_deny_loader(const char *url, const char *id, xmlParserCtxtPtr ctxt) {
    (void)url; (void)id; (void)ctxt;
    return NULL;
}
static inline void loom_xml_install_deny_loader(void) { xmlSetExternalEntityLoader(loom_deny_loader); }

// libxml2 prints some errors (encoding conversion, I/O) through its generic handler, which writes to stderr.
// Loom reports problems itself (rejects, one error line), so the generic handler is silenced. It is a per-thread
// setting in libxml2: call this on each thread that parses. (Variadic, so it cannot be written in Swift.)
static void loom_xml_silent(void *ctx, const char *msg, ...) { (void)ctx; (void)msg; }
static inline void loom_xml_silence_generic_errors(void) { xmlSetGenericErrorFunc(NULL, loom_xml_silent); }

#endif
