/* half.h: IEEE 754 binary16 ("F16") <-> binary32, exact where the value fits: the scales
 * of 8-bit weights (docs/formats.md) and F16 tensors in model files. */
#ifndef MTP_HALF_H
#define MTP_HALF_H

#include <stdint.h>

float mtp_f16_to_f32(uint16_t h);  /* exact for every input (subnormals, inf, NaN) */
uint16_t mtp_f32_to_f16(float f);  /* nearest, ties to even; overflow -> inf; NaN stays NaN */

#endif
