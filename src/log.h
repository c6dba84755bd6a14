/*
 * log.h - one line per event, key=value, for people, grep and journald.
 *
 *   2026-11-26T16:40:00Z sagebridge[812]: level=info event=published
 *       batch=20261126T164000Z-orders-1a2b3c4d file=orders.json records=3
 */
#ifndef SAGEBRIDGE_LOG_H
#define SAGEBRIDGE_LOG_H

typedef enum { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR } log_level;

/* log_open - to "stderr" (default) or "syslog" */
void log_open(const char *where);
/* log_event - fmt adds more key=value pairs (may be NULL); values with
 * spaces are quoted by the caller with %q-like care: use log_q() */
void log_event(log_level lvl, const char *batch, const char *file, const char *event,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* log_q - a value quoted for key=value ("..." when it has spaces or quotes); static buffer */
const char *log_q(const char *v);

#endif
