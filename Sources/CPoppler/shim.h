#ifndef LOOM_CPOPPLER_SHIM_H
#define LOOM_CPOPPLER_SHIM_H
// poppler-glib (PDF text and rendering) and cairo (rendering pages for OCR; tests draw PDFs with cairo-pdf).
#include <glib.h>
#include <glib-object.h>
#include <poppler.h>
#include <cairo.h>
#include <cairo-pdf.h>

// GLib's function-like macros and GObject casts do not import into Swift: plain functions instead.
static inline void loom_g_free(void *p) { g_free(p); }
static inline void loom_unref(void *object) { if (object) g_object_unref(object); }
static inline void loom_error_free(GError *e) { if (e) g_error_free(e); }
static inline const char *loom_error_message(const GError *e) { return e && e->message ? e->message : ""; }
static inline int loom_error_is_encrypted(const GError *e) {
    return e && e->domain == POPPLER_ERROR && e->code == POPPLER_ERROR_ENCRYPTED;
}
#endif
