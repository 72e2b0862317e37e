// Writes the example PDFs of examples/pdf (committed; run again with `make examples-pdf` after editing the text):
//   home-insurance-terms.pdf        three pages with a text layer, a running header and page numbers
//   home-insurance-terms-2025.pdf   last year's edition: the same terms with a few figures changed (near-duplicates)
//   scanned-claim-notice.pdf        one page that is only an image of text (no text layer), for OCR
//   damaged-claim-form.pdf          the first bytes of a PDF only (a truncated download): rejected, the run goes on
// Build: gcc -O1 make-pdfs.c $(pkg-config --cflags --libs cairo-pdf) -o /tmp/make-pdfs && /tmp/make-pdfs DIR
#include <cairo-pdf.h>
#include <cairo.h>
#include <stdio.h>
#include <string.h>

static const char *pages[3][14] = {
    {"Section 1. What this policy covers",
     "This policy covers sudden and accidental physical loss or damage to the",
     "dwelling named in the schedule, including fixtures and fittings. Damage",
     "caused by fire, lightning, explosion, storm or the escape of water from a",
     "fixed installation is covered up to the sum insured for buildings.",
     "",
     "Section 2. What this policy does not cover",
     "Wear and tear, gradual deterioration and damage caused by insects or",
     "vermin are not covered. Loss or damage while the home is unoccupied for",
     "more than sixty consecutive days is not covered, because the risk of",
     "undetected leaks and theft rises when nobody lives in the home.", "", "", ""},
    {"Section 3. Making a claim",
     "You must tell us about any claim as soon as possible and within thirty",
     "days of the loss. Therefore a claim reported after thirty days may be",
     "refused unless you show that you could not have reported it earlier.",
     "We may ask for receipts, photographs or repair estimates before we pay.",
     "",
     "Section 4. The excess",
     "The excess is the first part of any claim that you pay yourself. The",
     "standard excess is 250 euros for each claim. However, claims for escape",
     "of water carry an excess of 500 euros, due to the higher cost of drying",
     "out walls and floors.", "", "", ""},
    {"Section 5. Cancelling the policy",
     "You may cancel the policy within fourteen days of receiving it and we",
     "will refund the premium in full. After fourteen days we will refund the",
     "premium for the unused period, less an administration charge of 30",
     "euros. In other words, cancelling late costs you the charge and the days",
     "already covered.",
     "",
     "Section 6. Complaints",
     "If you are unhappy with our service, write to the complaints team. We",
     "will reply within eight weeks. Moreover, you may refer the complaint to",
     "the insurance ombudsman if our answer does not resolve it.", "", "", ""},
};

// Last year's edition differs in a few words: the same line with these replacements.
static const char *edits[][2] = {
    {"250 euros", "200 euros"}, {"thirty", "twenty-eight"}, {"eight weeks", "ten weeks"}, {0, 0}};

static void text_page(cairo_t *cr, int page, int old) {
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 9);
    cairo_move_to(cr, 72, 40);
    cairo_show_text(cr, "Loom Mutual - Home Insurance Policy Terms");
    cairo_set_font_size(cr, 11);
    double y = 96;
    for (int i = 0; i < 14 && pages[page][i]; i++) {
        const char *line = pages[page][i];
        char edited[256];
        if (old) {
            snprintf(edited, sizeof edited, "%s", line);
            for (int e = 0; edits[e][0]; e++) {
                char *at = strstr(edited, edits[e][0]);
                if (!at) continue;
                char rest[256];
                snprintf(rest, sizeof rest, "%s", at + strlen(edits[e][0]));
                snprintf(at, sizeof edited - (size_t)(at - edited), "%s%s", edits[e][1], rest);
            }
            line = edited;
        }
        if (strncmp(line, "Section", 7) == 0) cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
        cairo_move_to(cr, 72, y);
        cairo_show_text(cr, line);
        cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
        y += 16;
    }
    char num[32];
    snprintf(num, sizeof num, "Page %d of 3", page + 1);
    cairo_set_font_size(cr, 9);
    cairo_move_to(cr, 270, 800);
    cairo_show_text(cr, num);
}

static const char *scan[] = {
    "NOTICE OF CLAIM",
    "Policy number HX-20417. Date of loss: 3 March.",
    "A pipe under the kitchen sink burst during the night",
    "and water spread across the kitchen floor. The floor",
    "boards and the lower cupboards were damaged because",
    "the water stood for several hours before it was found.",
    "The policyholder asks for the cost of drying the room",
    "and replacing the boards. Photographs are attached.",
    0};

static void policy(const char *path, int old) {
    cairo_surface_t *pdf = cairo_pdf_surface_create(path, 595, 842);
    cairo_pdf_surface_set_metadata(pdf, CAIRO_PDF_METADATA_TITLE, "Home Insurance Policy Terms");
    cairo_pdf_surface_set_metadata(pdf, CAIRO_PDF_METADATA_CREATE_DATE, old ? "2025-01-01T00:00:00Z" : "2026-01-01T00:00:00Z");
    cairo_t *cr = cairo_create(pdf);
    for (int p = 0; p < 3; p++) {
        text_page(cr, p, old);
        cairo_show_page(cr);
    }
    cairo_destroy(cr);
    cairo_surface_finish(pdf);
    cairo_surface_destroy(pdf);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    char path[4096];
    snprintf(path, sizeof path, "%s/home-insurance-terms.pdf", dir);
    policy(path, 0);
    snprintf(path, sizeof path, "%s/home-insurance-terms-2025.pdf", dir);
    policy(path, 1);
    // A truncated copy: the first 700 bytes of a policy PDF (header and first objects only).
    FILE *in = fopen(path, "rb");
    char buf[700];
    size_t n = in ? fread(buf, 1, sizeof buf, in) : 0;
    if (in) fclose(in);
    snprintf(path, sizeof path, "%s/damaged-claim-form.pdf", dir);
    FILE *out = fopen(path, "wb");
    if (out) {
        fwrite(buf, 1, n, out);
        fclose(out);
    }
    cairo_surface_t *pdf;
    cairo_t *cr;

    // The "scan": text drawn into a 150 dpi grey image, the image painted on an otherwise empty page.
    int w = 1240, h = 1754;
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    cairo_t *ic = cairo_create(img);
    cairo_set_source_rgb(ic, 1, 1, 1);
    cairo_paint(ic);
    cairo_set_source_rgb(ic, 0.1, 0.1, 0.1);
    cairo_select_font_face(ic, "DejaVu Serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(ic, 30);
    double y = 200;
    for (int i = 0; scan[i]; i++) {
        cairo_move_to(ic, 150, y);
        cairo_show_text(ic, scan[i]);
        y += 52;
    }
    cairo_destroy(ic);
    snprintf(path, sizeof path, "%s/scanned-claim-notice.pdf", dir);
    pdf = cairo_pdf_surface_create(path, 595, 842);
    cairo_pdf_surface_set_metadata(pdf, CAIRO_PDF_METADATA_CREATE_DATE, "2026-01-01T00:00:00Z");
    cr = cairo_create(pdf);
    cairo_scale(cr, 595.0 / w, 842.0 / h);
    cairo_set_source_surface(cr, img, 0, 0);
    cairo_paint(cr);
    cairo_show_page(cr);
    cairo_destroy(cr);
    cairo_surface_finish(pdf);
    cairo_surface_destroy(pdf);
    cairo_surface_destroy(img);
    return 0;
}
