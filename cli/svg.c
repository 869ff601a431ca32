/* svg.c: see svg.h. */
#include "svg.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf;

static void out(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if ((size_t)n < b->cap - b->len) {
            b->len += n;
            return;
        }
        b->buf = xrealloc(b->buf, b->cap = b->cap * 2 + n + 64);
    }
}

int mtp_svg_plot(const char *path, const char *title, const char *xlabel, const char *ylabel,
                 const mtp_series *s, int ns, int log_x, int y_unit, mtp_err *err) {
    static const char *const COLORS[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};
    const double W = 640, H = 420, L = 70, R = 150, T = 40, B = 60;
    double x0 = INFINITY, x1 = -INFINITY, y1 = y_unit ? 1 : 0;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            double x = log_x ? log10(s[k].x[i]) : s[k].x[i];
            x0 = fmin(x0, x), x1 = fmax(x1, x), y1 = fmax(y1, s[k].y[i]);
        }
    if (!(x1 > x0)) x1 = x0 + 1;
    if (!(y1 > 0)) y1 = 1;
#define PX(x) (L + ((log_x ? log10(x) : (x)) - x0) / (x1 - x0) * (W - L - R))
#define PY(y) (H - B - (y) / y1 * (H - T - B))
    sbuf b = {xmalloc(4096), 0, 4096};
    out(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    out(&b, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    out(&b, "<text x=\"%g\" y=\"22\" font-size=\"15\">%s</text>\n", L, title);
    out(&b, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", L, H - B, W - R, H - B);
    out(&b, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", L, T, L, H - B);
    for (int i = 0; i <= 5; i++) { /* y ticks */
        double y = y1 * i / 5;
        out(&b, "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, PY(y), W - R, PY(y));
        out(&b, "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%.2g</text>\n", L - 6, PY(y) + 4, y);
    }
    for (int k = 0; k < ns && k < 1; k++) /* x ticks at the first series' points */
        for (int i = 0; i < s[k].n; i++)
            out(&b, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%.3g</text>\n", PX(s[k].x[i]), H - B + 16, s[k].x[i]);
    out(&b, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%s</text>\n", (L + W - R) / 2, H - 18, xlabel);
    out(&b, "<text x=\"16\" y=\"%g\" transform=\"rotate(-90 16 %g)\" text-anchor=\"middle\">%s</text>\n", (T + H - B) / 2, (T + H - B) / 2, ylabel);
    for (int k = 0; k < ns; k++) {
        const char *c = COLORS[k % 6];
        out(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", c);
        for (int i = 0; i < s[k].n; i++) out(&b, "%.1f,%.1f ", PX(s[k].x[i]), PY(s[k].y[i]));
        out(&b, "\"/>\n");
        for (int i = 0; i < s[k].n; i++)
            out(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PX(s[k].x[i]), PY(s[k].y[i]), c);
        out(&b, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"2\"/>\n", W - R + 12, T + 10 + 18.0 * k, W - R + 32, T + 10 + 18.0 * k, c);
        out(&b, "<text x=\"%g\" y=\"%g\">%s</text>\n", W - R + 38, T + 14 + 18.0 * k, s[k].name);
    }
    out(&b, "</svg>\n");
#undef PX
#undef PY
    mtp_atomic_file af;
    int rc = mtp_atomic_open(&af, path, err);
    if (rc == 0) {
        mtp_atomic_write(&af, b.buf, b.len);
        rc = mtp_atomic_commit(&af, err);
    }
    free(b.buf);
    return rc;
}
