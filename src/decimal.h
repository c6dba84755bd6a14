/*
 * decimal.h - exact decimal numbers for money and quantities.
 *
 * A value is a 128-bit signed coefficient and a scale (number of digits after
 * the point): 19.99 is {1999, 2}.  Nothing here ever goes through binary
 * floating point, so "0.1" stays 0.1 and "1.5e1" becomes exactly 15.
 */
#ifndef SAGEBRIDGE_DECIMAL_H
#define SAGEBRIDGE_DECIMAL_H

#include <stdbool.h>
#include <stddef.h>

#define DEC_MAX_SCALE  18 /* digits after the point kept by arithmetic */
#define DEC_MAX_DIGITS 36 /* significant digits a value may carry */
#define DEC_TEXT_MAX   48 /* room for any formatted value, with NUL */

typedef struct {
    __int128 coef;
    int scale; /* 0..DEC_MAX_SCALE */
} decimal;

typedef enum {
    DEC_OK = 0,
    DEC_ESYNTAX,   /* not a number */
    DEC_EOVERFLOW, /* too many digits or out of range */
} dec_status;

dec_status dec_parse(const char *s, size_t len, decimal *out);
dec_status dec_add(decimal a, decimal b, decimal *out);
dec_status dec_sub(decimal a, decimal b, decimal *out);
dec_status dec_mul(decimal a, decimal b, decimal *out);
decimal dec_neg(decimal a);
decimal dec_abs(decimal a);
int dec_cmp(decimal a, decimal b);
int dec_sign(decimal a);
decimal dec_round(decimal a, int scale);
size_t dec_format(decimal a, int scale, bool trim, char *buf, size_t bufsz);
const char *dec_strerror(dec_status st);

#endif
