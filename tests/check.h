/* Minimal test harness: CHECK macros that count, print what was compared on failure,
 * and a summary line "N passed, N failed" that CTest logs. */
#ifndef HERD_TEST_CHECK_H
#define HERD_TEST_CHECK_H

#include <math.h>
#include <stdio.h>

static _Atomic int check_passed_, check_failed_; /* atomic: threaded tests check from every rank */

#define CHECK(cond, ...)                                              \
    do {                                                              \
        if (cond) {                                                   \
            check_passed_++;                                          \
        } else {                                                      \
            check_failed_++;                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                             \
            fprintf(stderr, "\n");                                    \
        }                                                             \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_CLOSE(a, b, atol, rtol, what)                                                              \
    do {                                                                                                 \
        double a_ = (a), b_ = (b);                                                                       \
        CHECK(fabs(a_ - b_) <= (atol) + (rtol)*fabs(b_), "%s: got %.9g expected %.9g (atol %g rtol %g)", \
              (what), a_, b_, (double)(atol), (double)(rtol));                                           \
    } while (0)

static inline int check_summary(void) {
    printf("%d passed, %d failed\n", check_passed_, check_failed_);
    return check_failed_ ? 1 : 0;
}

#endif
