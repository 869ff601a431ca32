/* svg.h: a line plot as a small standalone SVG file (the experiment reports' figures). */
#ifndef MTP_SVG_H
#define MTP_SVG_H

#include "core/util.h"

typedef struct {
    const char *name;
    const double *x, *y;
    int n;
} mtp_series;

/* Axes from the data (y from 0 to max(1, ymax) when y_unit, else to the data's max);
 * log_x puts x on a log scale. Written atomically. */
int mtp_svg_plot(const char *path, const char *title, const char *xlabel, const char *ylabel,
                 const mtp_series *s, int ns, int log_x, int y_unit, mtp_err *err);

#endif
