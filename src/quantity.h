/* quantity.h: the value text of Kubernetes API objects.
 * Provides Go resource.Quantity canonical strings (DecimalSI, BinarySI) from
 * int64 milli-units, Go's float64 -> milli conversion (clamped, never
 * undefined), Go time.Duration text and RFC 3339 UTC second timestamps.
 * Uses only libc and buf.h. Pure functions: thread-safe, no global state.
 * Must never round: every conversion truncates as Go does (spec-rules 6.3,
 * spec-server 4.1, 4.3, 4.4). */
#ifndef ADAPTER_QUANTITY_H
#define ADAPTER_QUANTITY_H
#include <stdint.h>
#include "buf.h"

/* Appends the DecimalSI canonical form of milli/1000 ("16m", "1", "1k").
 * Returns 0, or -1 when the buffer refused the bytes (it is then freed). */
int quantity_decimal_si(struct buf *b, int64_t milli);

/* Appends the BinarySI canonical form ("1Ki", "3584Mi"); falls back to
 * DecimalSI for |value| < 1024 and for fractional units. 0 / -1. */
int quantity_binary_si(struct buf *b, int64_t milli);

/* Go int64(v*1000) with the project's clamping (decisions 9, 10, 30):
 * NaN -> 0, +Inf and values >= 2^63 -> INT64_MAX, -Inf and < -2^63 ->
 * INT64_MIN, otherwise truncation toward zero (1.005 -> 1004). */
int64_t quantity_milli(double v);

/* Appends Go time.Duration text for a duration in milliseconds:
 * 0 -> "0s", 500 -> "500ms", 1500 -> "1.5s", 90000 -> "1m30s",
 * 3600000 -> "1h0m0s"; negative values get a leading '-'. 0 / -1. */
int quantity_go_duration(struct buf *b, int64_t ms);

/* Appends RFC 3339 UTC with whole seconds ("2024-05-16T09:21:07Z") for a
 * Unix epoch in seconds; the fraction is dropped (floor, as Go's
 * Time.Truncate-free formatting of a UTC time). -1 for NaN/Inf, years
 * outside 0..9999, or when the buffer refuses the bytes. */
int quantity_rfc3339(struct buf *b, double epoch);
#endif
