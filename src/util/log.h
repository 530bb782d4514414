/* Structured logging to stderr: one line per event, "ts=... level=... msg=..." followed by
 * key=value pairs the caller formats. Thread-safe (one write(2) per line). */
#ifndef TR_UTIL_LOG_H
#define TR_UTIL_LOG_H

typedef enum { TR_LOG_DEBUG = 0, TR_LOG_INFO, TR_LOG_WARN, TR_LOG_ERROR } tr_log_level;

void tr_log_set_level(tr_log_level level);
/* Parses "debug", "info", "warn", "error"; returns -1 when unknown. */
int tr_log_parse_level(const char *name, tr_log_level *out);
void tr_log(tr_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define tr_debug(...) tr_log(TR_LOG_DEBUG, __VA_ARGS__)
#define tr_info(...) tr_log(TR_LOG_INFO, __VA_ARGS__)
#define tr_warn(...) tr_log(TR_LOG_WARN, __VA_ARGS__)
#define tr_error(...) tr_log(TR_LOG_ERROR, __VA_ARGS__)

#endif
