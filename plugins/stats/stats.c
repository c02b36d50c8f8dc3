/*
 * stats: statistics and reports over the helpdesk's `tickets` table.
 *
 * The counting happens in SQL (portable between SQLite and PostgreSQL:
 * substr() for the day of an ISO-8601 timestamp, GROUP BY, text comparison
 * of ISO dates); this module only checks its input, fills the days SQL has
 * no rows for, computes the median time to close (which needs timestamp
 * arithmetic SQL cannot do portably) and shapes the JSON. Pages are Jinja
 * templates (templates/), so no HTML is built here.
 *
 * Functions: summary and open_count (template functions), page, export_csv
 * and widget (route and widget handlers), send_report (the weekly job, also
 * callable for any range). The plugin owns no tables. Build with ./build.sh.
 */
#include "goatkit.h"

#include <time.h>

/* Static: the host reads the registration once and never frees it. */
static const char REGISTRATION[] =
    "{"
    "\"name\":\"stats\","
    "\"version\":\"1.0.0\","
    "\"description\":\"Ticket statistics and reports: a dashboard with charts, a CSV export, "
    "a dashboard widget and a weekly email report\","
    "\"author\":\"goatkit_asgi contributors\","
    "\"license\":\"Apache-2.0\","
    "\"permissions\":[\"stats.view\"],"
    "\"functions\":["
    "{\"name\":\"summary\",\"args\":[\"from\",\"to\"],\"returns\":\"object\","
    "\"description\":\"Ticket counts for tickets created from..to (YYYY-MM-DD, inclusive; "
    "default the 30 days ending today): total, by_state, by_queue, by_priority, per_day, "
    "closed, median_close_hours\"},"
    "{\"name\":\"open_count\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"{open, total}: tickets not closed, and all tickets\"}"
    "],"
    "\"routes\":["
    "{\"method\":\"GET\",\"path\":\"/stats\",\"handler\":\"page\",\"permission\":\"stats.view\","
    "\"description\":\"The statistics dashboard\"},"
    "{\"method\":\"GET\",\"path\":\"/stats/export.csv\",\"handler\":\"export_csv\","
    "\"permission\":\"stats.view\",\"description\":\"The statistics of a range as CSV\"}"
    "],"
    "\"menu_items\":[{\"id\":\"stats\",\"label\":\"Statistics\",\"path\":\"/stats\","
    "\"icon\":\"chart\",\"location\":\"main\",\"order\":120,\"permission\":\"stats.view\"}],"
    "\"widgets\":[{\"id\":\"stats-overview\",\"title\":\"Ticket statistics\","
    "\"handler\":\"widget\",\"location\":\"dashboard\",\"permission\":\"stats.view\"}],"
    "\"jobs\":[{\"id\":\"weekly-report\",\"handler\":\"send_report\",\"schedule\":\"0 8 * * 1\","
    "\"enabled\":true,\"description\":\"Mails the report of the last report_days days "
    "every Monday at 08:00 UTC\"}]"
    "}";

uint64_t gk_register(void) { return gk_return_static(REGISTRATION); }

#define DEFAULT_DAYS 30   /* summary's range when none is given */
#define MAX_DAYS 366      /* the longest range accepted */
#define WIDGET_DAYS 14    /* the widget's sparkline */
#define PAGE_ROWS 2000    /* rows per db_query when reading close times */
#define STR_(x) #x
#define STR(x) STR_(x)
#define US_PER_HOUR 3600000000.0

/* ------------------------------------------------------------------------ */
/* Calendar arithmetic                                                      */
/* ------------------------------------------------------------------------ */

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d
 * (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    int64_t era, yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse: the date of day z (days since 1970-01-01). */
static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d) {
    int64_t era, doe, yoe, doy, mp;
    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int64_t m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Reads exactly n decimal digits at s. */
static int read_digits(const char *s, size_t n, int64_t *out) {
    size_t i;
    int64_t v = 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

enum { DATE_OK = 1, DATE_BAD_FORMAT = 0, DATE_NOT_A_DAY = -1 };

/* A date written exactly as YYYY-MM-DD (year 0001-9999) at s[0..n): DATE_OK
 * with *days set, DATE_BAD_FORMAT for another shape, DATE_NOT_A_DAY for a
 * well-formed date that is not in the calendar (2026-02-30, 2026-13-01). */
static int parse_date(const char *s, size_t n, int64_t *days) {
    int64_t y, m, d;
    if (n != 10 || s[4] != '-' || s[7] != '-' || !read_digits(s, 4, &y) ||
        !read_digits(s + 5, 2, &m) || !read_digits(s + 8, 2, &d))
        return DATE_BAD_FORMAT;
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) return DATE_NOT_A_DAY;
    *days = days_from_civil(y, m, d);
    return DATE_OK;
}

/* Writes day z as YYYY-MM-DD plus a NUL into out[11]. */
static void format_date(int64_t z, char out[11]) {
    int64_t y, m, d;
    civil_from_days(z, &y, &m, &d);
    if (y < 0 || y > 9999) y = 0; /* never for the dates this plugin handles */
    out[0] = (char)('0' + y / 1000);
    out[1] = (char)('0' + y / 100 % 10);
    out[2] = (char)('0' + y / 10 % 10);
    out[3] = (char)('0' + y % 10);
    out[4] = '-';
    out[5] = (char)('0' + m / 10);
    out[6] = (char)('0' + m % 10);
    out[7] = '-';
    out[8] = (char)('0' + d / 10);
    out[9] = (char)('0' + d % 10);
    out[10] = '\0';
}

/* An ISO-8601 timestamp as Python's datetime.isoformat() writes it, in
 * microseconds since the epoch: YYYY-MM-DD, then optionally 'T' or ' ' and
 * HH:MM[:SS[.ffffff]], then optionally Z or an offset +HH:MM / +HHMM / +HH
 * (no offset reads as UTC). Returns 1 on success. */
static int parse_timestamp(const char *s, size_t n, int64_t *us) {
    int64_t days, hh = 0, mi = 0, ss = 0, frac = 0, offset_min = 0;
    size_t i = 10;
    if (n < 10 || parse_date(s, 10, &days) != DATE_OK) return 0;
    if (i < n && (s[i] == 'T' || s[i] == 't' || s[i] == ' ')) {
        if (n < i + 6 || !read_digits(s + i + 1, 2, &hh) || s[i + 3] != ':' ||
            !read_digits(s + i + 4, 2, &mi))
            return 0;
        i += 6;
        if (i < n && s[i] == ':') {
            if (n < i + 3 || !read_digits(s + i + 1, 2, &ss)) return 0;
            i += 3;
            if (i < n && (s[i] == '.' || s[i] == ',')) {
                int64_t scale = 100000; /* the first digit is tenths of a second */
                size_t start = ++i;
                while (i < n && s[i] >= '0' && s[i] <= '9') {
                    if (scale > 0) frac += (s[i] - '0') * scale;
                    scale /= 10;
                    i++;
                }
                if (i == start) return 0;
            }
        }
        if (hh > 23 || mi > 59 || ss > 60) return 0;
    }
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int64_t oh, om = 0;
        int sign = s[i] == '-' ? -1 : 1;
        if (n < i + 3 || !read_digits(s + i + 1, 2, &oh)) return 0;
        i += 3;
        if (i < n && s[i] == ':') i++;
        if (i < n) {
            if (n < i + 2 || !read_digits(s + i, 2, &om)) return 0;
            i += 2;
        }
        if (oh > 23 || om > 59) return 0;
        offset_min = sign * (oh * 60 + om);
    }
    if (i != n) return 0;
    /* Local time minus its offset is UTC. */
    *us = ((days * 86400 + hh * 3600 + (mi - offset_min) * 60 + ss) * 1000000) + frac;
    return 1;
}

/* Today's day number from the WASI clock (UTC). */
static int64_t today(void) {
    int64_t now = (int64_t)time(NULL);
    return (now >= 0 ? now : now - 86399) / 86400;
}

/* ------------------------------------------------------------------------ */
/* Input: the date range                                                    */
/* ------------------------------------------------------------------------ */

typedef struct range {
    int64_t from, to; /* day numbers, inclusive */
    char from_s[11], to_s[11];
} range;

/* Why a range was refused: the field, a reason the page translates
 * (format, invalid, order, too_long) and a message for the API. */
typedef struct input_error {
    const char *field;
    const char *reason;
    char message[240];
} input_error;

static int refuse(input_error *err, const char *field, const char *reason, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));

static int refuse(input_error *err, const char *field, const char *reason, const char *fmt,
                  ...) {
    va_list ap;
    err->field = field;
    err->reason = reason;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return 0;
}

enum { ARG_ABSENT = 0, ARG_DATE = 1, ARG_BAD = -1 };

/* Reads the optional date field `key` of args: ARG_ABSENT when it is
 * missing, null or "" (an empty form field), ARG_DATE with *days set, or
 * ARG_BAD with err filled. */
static int date_arg(const char *args, size_t len, const char *key, int64_t *days,
                    input_error *err) {
    gk_slice v;
    gk_buf text = GK_BUF_INIT;
    int type = args ? gk_json_find(args, len, key, &v) : GK_JSON_MISSING, result;
    if (type == GK_JSON_MISSING || type == GK_JSON_NULL || type == GK_JSON_INVALID)
        return ARG_ABSENT;
    if (type != GK_JSON_STRING || !gk_json_decode_string(v.ptr, v.len, &text)) {
        gk_buf_free(&text);
        refuse(err, key, "format", "%s: expected a date as YYYY-MM-DD (such as 2026-01-31)", key);
        return ARG_BAD;
    }
    if (text.len == 0) {
        gk_buf_free(&text);
        return ARG_ABSENT;
    }
    result = parse_date(text.data, text.len, days);
    if (result == DATE_BAD_FORMAT)
        refuse(err, key, "format",
               "%s: expected a date as YYYY-MM-DD (such as 2026-01-31), got \"%.32s\"", key,
               text.data);
    else if (result == DATE_NOT_A_DAY)
        refuse(err, key, "invalid",
               "%s: %.10s is not a calendar date; expected a real date as YYYY-MM-DD", key,
               text.data);
    gk_buf_free(&text);
    return result == DATE_OK ? ARG_DATE : ARG_BAD;
}

/* The range asked for in args ("from", "to"; both optional): a missing "to"
 * is default_to, a missing "from" is `span` days back from "to". Refuses bad
 * dates, from after to, and ranges longer than MAX_DAYS. Returns 1 if valid. */
static int read_range(const char *args, size_t len, int64_t default_to, int64_t span, range *r,
                      input_error *err) {
    int has_from = date_arg(args, len, "from", &r->from, err);
    int has_to;
    if (has_from == ARG_BAD) return 0;
    has_to = date_arg(args, len, "to", &r->to, err);
    if (has_to == ARG_BAD) return 0;
    if (has_to == ARG_ABSENT) r->to = default_to;
    if (has_from == ARG_ABSENT) r->from = r->to - (span - 1);
    format_date(r->from, r->from_s);
    format_date(r->to, r->to_s);
    if (r->from > r->to)
        return refuse(err, "from", "order",
                      "from: %s is after to (%s); expected from <= to, both as YYYY-MM-DD",
                      r->from_s, r->to_s);
    if (r->to - r->from + 1 > MAX_DAYS)
        return refuse(err, "to", "too_long",
                      "to: %s..%s spans %lld days; at most %d are allowed (dates as YYYY-MM-DD)",
                      r->from_s, r->to_s, (long long)(r->to - r->from + 1), MAX_DAYS);
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Host errors                                                              */
/* ------------------------------------------------------------------------ */

/* Returns the last failed host call's code and message as this call's error
 * (e.g. capability_denied when the db grant is missing). */
static uint64_t return_last_error(const char *what) {
    gk_buf code = GK_BUF_INIT, message = GK_BUF_INIT, full = GK_BUF_INIT;
    uint64_t r;
    gk_last_error_parts(&code, &message);
    gk_buf_append_cstr(&full, what);
    gk_buf_append_cstr(&full, ": ");
    gk_buf_append(&full, message.data, message.len);
    gk_logf(GK_LOG_WARN, "%s failed: %s", what, code.data);
    r = gk_return_error(code.data, full.oom ? what : full.data);
    gk_buf_free(&code);
    gk_buf_free(&message);
    gk_buf_free(&full);
    return r;
}

static uint64_t return_input_error(const input_error *err) {
    return gk_return_error("bad_input", err->message);
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                  */
/* ------------------------------------------------------------------------ */

/* Runs the statement q (begun with gk_sql_begin, arguments added); rows gets
 * the answer (an array, or null for none). Returns 0 when the host refused
 * it (see gk_last_error). */
static int query_run(gk_buf *q, gk_buf *rows) {
    gk_sql_end(q);
    return gk_db_query(q, rows);
}

/* A row's string column as text; NULL (or a non-string) becomes `missing`. */
static void row_string(const gk_slice *row, const char *col, gk_buf *out, const char *missing) {
    if (!gk_json_get_string(row->ptr, row->len, col, out)) {
        gk_buf_reset(out);
        gk_buf_append_cstr(out, missing);
    }
}

static int64_t row_int(const gk_slice *row, const char *col) {
    int64_t v;
    return gk_json_get_int(row->ptr, row->len, col, &v) ? v : 0;
}

/* ------------------------------------------------------------------------ */
/* Counts by state, queue and priority                                      */
/* ------------------------------------------------------------------------ */

enum { DIM_STATE, DIM_QUEUE, DIM_PRIORITY, DIM_COUNT };
static const char *const DIM_NAMES[DIM_COUNT] = {"state", "queue", "priority"};
static const char *const DIM_KEYS[DIM_COUNT] = {"by_state", "by_queue", "by_priority"};

/* The states of the demo helpdesk, always listed (zeros too) and in this
 * order; any other state follows. */
static const char *const STATES[] = {"new", "open", "pending", "closed"};
#define N_STATES (sizeof STATES / sizeof STATES[0])

typedef struct group {
    int dim;
    char *key;
    size_t key_len;
    int64_t n;
} group;

typedef struct groups {
    group *items;
    size_t len, cap;
} groups;

static void groups_free(groups *g) {
    size_t i;
    for (i = 0; i < g->len; i++) free(g->items[i].key);
    free(g->items);
    g->items = NULL;
    g->len = g->cap = 0;
}

/* Out of memory while counting: nothing useful can be returned, and the host
 * discards an instance that trapped (as the SDK's gk_return_* helpers do). */
static void *must(void *p) {
    if (!p) __builtin_trap();
    return p;
}

static void groups_add(groups *g, int dim, const char *key, size_t key_len, int64_t n) {
    group *item;
    if (g->len == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 16;
        g->items = (group *)must(realloc(g->items, g->cap * sizeof *g->items));
    }
    item = &g->items[g->len++];
    item->key = (char *)must(malloc(key_len + 1));
    memcpy(item->key, key, key_len);
    item->key[key_len] = '\0';
    item->key_len = key_len;
    item->dim = dim;
    item->n = n;
}

static size_t state_rank(const group *a) {
    size_t i;
    for (i = 0; i < N_STATES; i++)
        if (strcmp(a->key, STATES[i]) == 0) return i;
    return N_STATES;
}

static int compare_keys(const group *a, const group *b) {
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(a->key, b->key, n);
    return c ? c : (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

/* By dimension; states in their workflow order, queues and priorities by
 * count (largest first); ties by name, byte-wise, so SQLite and PostgreSQL
 * (whose collations differ) give the same order. */
static int compare_groups(const void *pa, const void *pb) {
    const group *a = (const group *)pa, *b = (const group *)pb;
    if (a->dim != b->dim) return a->dim - b->dim;
    if (a->dim == DIM_STATE) {
        size_t ra = state_rank(a), rb = state_rank(b);
        if (ra != rb) return ra < rb ? -1 : 1;
    } else if (a->n != b->n)
        return a->n > b->n ? -1 : 1;
    return compare_keys(a, b);
}

static const char GROUPS_SQL[] =
    "SELECT 'state' AS dim, state AS k, COUNT(*) AS n FROM tickets "
    "WHERE substr(created_at, 1, 10) BETWEEN ? AND ? GROUP BY state "
    "UNION ALL SELECT 'queue', queue, COUNT(*) FROM tickets "
    "WHERE substr(created_at, 1, 10) BETWEEN ? AND ? GROUP BY queue "
    "UNION ALL SELECT 'priority', priority, COUNT(*) FROM tickets "
    "WHERE substr(created_at, 1, 10) BETWEEN ? AND ? GROUP BY priority";

/* Fills g with the counts of tickets created in r, sorted. Returns 0 when
 * the query failed (see gk_last_error). */
static int load_groups(const range *r, groups *g) {
    gk_buf q = GK_BUF_INIT, rows = GK_BUF_INIT, dim = GK_BUF_INIT, key = GK_BUF_INIT;
    gk_json_iter it;
    gk_slice row;
    int type, i, ok;
    size_t s, j;
    gk_sql_begin(&q, GROUPS_SQL);
    for (i = 0; i < DIM_COUNT; i++) {
        gk_json_cstr(&q, r->from_s);
        gk_json_cstr(&q, r->to_s);
    }
    ok = query_run(&q, &rows);
    if (ok && gk_json_iter_begin(&it, rows.data, rows.len, '[')) {
        while (gk_json_iter_next(&it, NULL, &row, &type)) {
            int d = -1;
            if (type != GK_JSON_OBJECT) continue;
            row_string(&row, "dim", &dim, "");
            for (i = 0; i < DIM_COUNT; i++)
                if (strcmp(dim.data, DIM_NAMES[i]) == 0) d = i;
            if (d < 0) continue;
            row_string(&row, "k", &key, "(none)");
            groups_add(g, d, key.data, key.len, row_int(&row, "n"));
        }
    }
    /* The known states are always there, with zeros. */
    for (s = 0; ok && s < N_STATES; s++) {
        int found = 0;
        for (j = 0; j < g->len; j++)
            if (g->items[j].dim == DIM_STATE && strcmp(g->items[j].key, STATES[s]) == 0) found = 1;
        if (!found) groups_add(g, DIM_STATE, STATES[s], strlen(STATES[s]), 0);
    }
    if (ok && g->len) qsort(g->items, g->len, sizeof *g->items, compare_groups);
    gk_buf_free(&q);
    gk_buf_free(&rows);
    gk_buf_free(&dim);
    gk_buf_free(&key);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Per day, and the median time to close                                    */
/* ------------------------------------------------------------------------ */

static const char PER_DAY_SQL[] =
    "SELECT 'created' AS kind, substr(created_at, 1, 10) AS day, COUNT(*) AS n FROM tickets "
    "WHERE substr(created_at, 1, 10) BETWEEN ? AND ? GROUP BY substr(created_at, 1, 10) "
    "UNION ALL SELECT 'closed', substr(closed_at, 1, 10), COUNT(*) FROM tickets "
    "WHERE closed_at IS NOT NULL AND substr(closed_at, 1, 10) BETWEEN ? AND ? "
    "GROUP BY substr(closed_at, 1, 10)";

/* created[i] and closed[i] for day r->from + i; both arrays have
 * r->to - r->from + 1 zeroed entries. Returns 0 when the query failed. */
static int load_per_day(const range *r, int64_t *created, int64_t *closed, int with_closed) {
    gk_buf q = GK_BUF_INIT, rows = GK_BUF_INIT, kind = GK_BUF_INIT, day = GK_BUF_INIT;
    gk_json_iter it;
    gk_slice row;
    int type, ok;
    gk_sql_begin(&q, PER_DAY_SQL);
    gk_json_cstr(&q, r->from_s);
    gk_json_cstr(&q, r->to_s);
    /* The widget has no use for the closed counts: an empty range skips them. */
    gk_json_cstr(&q, with_closed ? r->from_s : "9999-12-31");
    gk_json_cstr(&q, with_closed ? r->to_s : "0000-01-01");
    ok = query_run(&q, &rows);
    if (ok && gk_json_iter_begin(&it, rows.data, rows.len, '[')) {
        while (gk_json_iter_next(&it, NULL, &row, &type)) {
            int64_t d;
            if (type != GK_JSON_OBJECT) continue;
            row_string(&row, "kind", &kind, "");
            row_string(&row, "day", &day, "");
            if (parse_date(day.data, day.len, &d) != DATE_OK || d < r->from || d > r->to)
                continue; /* a malformed timestamp: not a day of the range */
            if (strcmp(kind.data, "created") == 0) created[d - r->from] += row_int(&row, "n");
            else if (closed) closed[d - r->from] += row_int(&row, "n");
        }
    }
    gk_buf_free(&q);
    gk_buf_free(&rows);
    gk_buf_free(&kind);
    gk_buf_free(&day);
    return ok;
}

/* The first page, then the pages after the last id seen (no start value
 * fits every id type: PostgreSQL refuses a bigint bound for an integer). */
static const char DURATIONS_SQL[] =
    "SELECT id, created_at, closed_at FROM tickets "
    "WHERE closed_at IS NOT NULL AND substr(created_at, 1, 10) BETWEEN ? AND ? "
    "ORDER BY id LIMIT " STR(PAGE_ROWS);
static const char DURATIONS_NEXT_SQL[] =
    "SELECT id, created_at, closed_at FROM tickets "
    "WHERE closed_at IS NOT NULL AND substr(created_at, 1, 10) BETWEEN ? AND ? AND id > ? "
    "ORDER BY id LIMIT " STR(PAGE_ROWS);

static int compare_i64(const void *pa, const void *pb) {
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return (a > b) - (a < b);
}

/* The median time to close, in hours, of the tickets created in r that have
 * a closed_at; *closed gets how many those are, *has_median whether any had
 * timestamps that could be read. Rows come PAGE_ROWS at a time (keyset on
 * id) so each answer stays small. Returns 0 when a query failed. */
static int load_median(const range *r, int64_t *closed, int *has_median, double *hours) {
    gk_buf q = GK_BUF_INIT, rows = GK_BUF_INIT, a = GK_BUF_INIT, b = GK_BUF_INIT;
    int64_t *us = NULL, last_id = 0;
    size_t n = 0, cap = 0, skipped = 0;
    int ok = 1, more = 1, first = 1;
    *closed = 0;
    *has_median = 0;
    while (ok && more) {
        gk_json_iter it;
        gk_slice row;
        int type;
        size_t page = 0;
        gk_sql_begin(&q, first ? DURATIONS_SQL : DURATIONS_NEXT_SQL);
        gk_json_cstr(&q, r->from_s);
        gk_json_cstr(&q, r->to_s);
        if (!first) gk_json_int(&q, last_id);
        first = 0;
        ok = query_run(&q, &rows);
        if (!ok || !gk_json_iter_begin(&it, rows.data, rows.len, '[')) break;
        while (gk_json_iter_next(&it, NULL, &row, &type)) {
            int64_t start, end;
            if (type != GK_JSON_OBJECT) continue;
            page++;
            (*closed)++;
            last_id = row_int(&row, "id");
            row_string(&row, "created_at", &a, "");
            row_string(&row, "closed_at", &b, "");
            if (!parse_timestamp(a.data, a.len, &start) || !parse_timestamp(b.data, b.len, &end)) {
                skipped++;
                continue;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                us = (int64_t *)must(realloc(us, cap * sizeof *us));
            }
            us[n++] = end - start;
        }
        more = page == PAGE_ROWS;
    }
    if (skipped) gk_logf(GK_LOG_WARN, "median: %zu tickets have unreadable timestamps", skipped);
    if (ok && n) {
        qsort(us, n, sizeof *us, compare_i64);
        /* Halves first: the sum of two large durations cannot overflow. */
        *hours = n % 2 ? (double)us[n / 2] / US_PER_HOUR
                       : ((double)us[n / 2 - 1] / 2 + (double)us[n / 2] / 2) / US_PER_HOUR;
        *has_median = 1;
    }
    free(us);
    gk_buf_free(&q);
    gk_buf_free(&rows);
    gk_buf_free(&a);
    gk_buf_free(&b);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* The summary                                                              */
/* ------------------------------------------------------------------------ */

typedef struct summary {
    range r;
    int64_t days;
    int64_t *created, *closed_per_day;
    groups g;
    int64_t total, closed, closed_in_range;
    int has_median;
    double median_hours;
} summary;

static void summary_free(summary *s) {
    free(s->created);
    free(s->closed_per_day);
    groups_free(&s->g);
}

/* Loads everything about r into s. Returns 1, or 0 with the host's error
 * pending (gk_last_error). */
static int load_summary(const range *r, summary *s) {
    size_t i;
    memset(s, 0, sizeof *s);
    s->r = *r;
    s->days = r->to - r->from + 1;
    s->created = (int64_t *)must(calloc((size_t)s->days, sizeof *s->created));
    s->closed_per_day = (int64_t *)must(calloc((size_t)s->days, sizeof *s->closed_per_day));
    if (!load_groups(r, &s->g) || !load_per_day(r, s->created, s->closed_per_day, 1) ||
        !load_median(r, &s->closed, &s->has_median, &s->median_hours))
        return 0;
    for (i = 0; i < s->g.len; i++)
        if (s->g.items[i].dim == DIM_STATE) s->total += s->g.items[i].n;
    for (i = 0; i < (size_t)s->days; i++) s->closed_in_range += s->closed_per_day[i];
    return 1;
}

/* The summary as the JSON object summary() returns. */
static void write_summary(gk_buf *b, const summary *s) {
    int d;
    size_t i;
    char day[11];
    gk_json_object_begin(b);
    gk_json_key(b, "from");
    gk_json_cstr(b, s->r.from_s);
    gk_json_key(b, "to");
    gk_json_cstr(b, s->r.to_s);
    gk_json_key(b, "days");
    gk_json_int(b, s->days);
    gk_json_key(b, "total");
    gk_json_int(b, s->total);
    for (d = 0; d < DIM_COUNT; d++) {
        gk_json_key(b, DIM_KEYS[d]);
        gk_json_object_begin(b);
        for (i = 0; i < s->g.len; i++) {
            const group *item = &s->g.items[i];
            if (item->dim != d) continue;
            gk_json_string(b, item->key, item->key_len);
            gk_buf_append_char(b, ':');
            gk_json_int(b, item->n);
        }
        gk_json_object_end(b);
    }
    gk_json_key(b, "per_day");
    gk_json_array_begin(b);
    for (i = 0; i < (size_t)s->days; i++) {
        format_date(s->r.from + (int64_t)i, day);
        gk_json_object_begin(b);
        gk_json_key(b, "day");
        gk_json_cstr(b, day);
        gk_json_key(b, "created");
        gk_json_int(b, s->created[i]);
        gk_json_key(b, "closed");
        gk_json_int(b, s->closed_per_day[i]);
        gk_json_object_end(b);
    }
    gk_json_array_end(b);
    gk_json_key(b, "closed");
    gk_json_int(b, s->closed);
    gk_json_key(b, "closed_in_range");
    gk_json_int(b, s->closed_in_range);
    gk_json_key(b, "median_close_hours");
    if (s->has_median) gk_json_double(b, s->median_hours);
    else gk_json_null(b);
    gk_json_object_end(b);
}

/* ------------------------------------------------------------------------ */
/* Functions                                                                */
/* ------------------------------------------------------------------------ */

static uint64_t fn_summary(const char *args, size_t len) {
    range r;
    input_error err;
    summary s;
    gk_buf out = GK_BUF_INIT;
    if (!read_range(args, len, today(), DEFAULT_DAYS, &r, &err)) return return_input_error(&err);
    if (!load_summary(&r, &s)) {
        summary_free(&s);
        return return_last_error("reading the tickets");
    }
    write_summary(&out, &s);
    summary_free(&s);
    return gk_return_buf(&out);
}

static const char OPEN_SQL[] =
    "SELECT COALESCE(SUM(CASE WHEN COALESCE(state, '') <> 'closed' THEN 1 ELSE 0 END), 0) "
    "AS open, COUNT(*) AS total FROM tickets";

/* Reads {open, total} into the two numbers. Returns 0 on a host error. */
static int load_open_count(int64_t *open, int64_t *total) {
    gk_buf q = GK_BUF_INIT, rows = GK_BUF_INIT;
    gk_json_iter it;
    gk_slice row;
    int type, ok;
    *open = *total = 0;
    gk_sql_begin(&q, OPEN_SQL);
    ok = query_run(&q, &rows);
    if (ok && gk_json_iter_begin(&it, rows.data, rows.len, '[') &&
        gk_json_iter_next(&it, NULL, &row, &type) && type == GK_JSON_OBJECT) {
        *open = row_int(&row, "open");
        *total = row_int(&row, "total");
    }
    gk_buf_free(&q);
    gk_buf_free(&rows);
    return ok;
}

static uint64_t fn_open_count(void) {
    int64_t open, total;
    gk_buf out = GK_BUF_INIT;
    if (!load_open_count(&open, &total)) return return_last_error("counting the tickets");
    gk_json_object_begin(&out);
    gk_json_key(&out, "open");
    gk_json_int(&out, open);
    gk_json_key(&out, "total");
    gk_json_int(&out, total);
    gk_json_object_end(&out);
    return gk_return_buf(&out);
}

/* Appends the request's field `key` as the JSON value of `name` ("" when
 * absent or not a string), so the form shows what was typed. */
static void echo_field(gk_buf *b, const char *args, size_t len, const char *key) {
    gk_buf text = GK_BUF_INIT;
    gk_json_key(b, key);
    if (args && gk_json_get_string(args, len, key, &text) && text.len <= 64)
        gk_json_string(b, text.data, text.len);
    else
        gk_json_cstr(b, "");
    gk_buf_free(&text);
}

/* GET /stats: {"template": "page.html", "context": {"from", "to", "summary",
 * "error"}}; a refused range renders the form again with status 422. */
static uint64_t fn_page(const char *args, size_t len) {
    range r;
    input_error err;
    summary s;
    gk_buf out = GK_BUF_INIT;
    int valid = read_range(args, len, today(), DEFAULT_DAYS, &r, &err);
    if (valid && !load_summary(&r, &s)) {
        summary_free(&s);
        return return_last_error("reading the tickets");
    }
    gk_json_object_begin(&out);
    gk_json_key(&out, "template");
    gk_json_cstr(&out, "page.html");
    if (!valid) {
        gk_json_key(&out, "status");
        gk_json_int(&out, 422);
    }
    gk_json_key(&out, "context");
    gk_json_object_begin(&out);
    if (valid) {
        gk_json_key(&out, "from");
        gk_json_cstr(&out, r.from_s);
        gk_json_key(&out, "to");
        gk_json_cstr(&out, r.to_s);
        gk_json_key(&out, "summary");
        write_summary(&out, &s);
        gk_json_key(&out, "error");
        gk_json_null(&out);
        summary_free(&s);
    } else {
        echo_field(&out, args, len, "from");
        echo_field(&out, args, len, "to");
        gk_json_key(&out, "summary");
        gk_json_null(&out);
        gk_json_key(&out, "error");
        gk_json_object_begin(&out);
        gk_json_key(&out, "field");
        gk_json_cstr(&out, err.field);
        gk_json_key(&out, "reason");
        gk_json_cstr(&out, err.reason);
        gk_json_key(&out, "message");
        gk_json_cstr(&out, err.message);
        gk_json_object_end(&out);
    }
    gk_json_object_end(&out);
    gk_json_object_end(&out);
    return gk_return_buf(&out);
}

/* Appends one CSV field. Text that a spreadsheet would run as a formula
 * (starting with = + - @, or a tab or carriage return) gets a leading
 * apostrophe; a field with a comma, quote or line break is quoted, with
 * quotes doubled (RFC 4180). */
static void csv_field(gk_buf *b, const char *s, size_t n) {
    int formula = n > 0 && strchr("=+-@\t\r", s[0]) != NULL, quote = 0;
    size_t i;
    for (i = 0; i < n && !quote; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r') quote = 1;
    if (quote) gk_buf_append_char(b, '"');
    if (formula) gk_buf_append_char(b, '\'');
    for (i = 0; i < n; i++) {
        if (s[i] == '"') gk_buf_append_char(b, '"');
        gk_buf_append_char(b, s[i]);
    }
    if (quote) gk_buf_append_char(b, '"');
}

/* Appends v in decimal. */
static void append_int(gk_buf *b, int64_t v) {
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    gk_buf_append(b, tmp, (size_t)n);
}

/* The CSV document: "day,created,closed" and a row per day, then for each
 * of state, queue and priority a blank line, "<dimension>,tickets" and a row
 * per value. Lines end with CRLF. */
static void write_csv(gk_buf *b, const summary *s) {
    size_t i;
    int d;
    char day[11];
    gk_buf_append_cstr(b, "day,created,closed\r\n");
    for (i = 0; i < (size_t)s->days; i++) {
        format_date(s->r.from + (int64_t)i, day);
        gk_buf_append_cstr(b, day);
        gk_buf_append_char(b, ',');
        append_int(b, s->created[i]);
        gk_buf_append_char(b, ',');
        append_int(b, s->closed_per_day[i]);
        gk_buf_append_cstr(b, "\r\n");
    }
    for (d = 0; d < DIM_COUNT; d++) {
        gk_buf_append_cstr(b, "\r\n");
        gk_buf_append_cstr(b, DIM_NAMES[d]);
        gk_buf_append_cstr(b, ",tickets\r\n");
        for (i = 0; i < s->g.len; i++) {
            const group *item = &s->g.items[i];
            if (item->dim != d) continue;
            csv_field(b, item->key, item->key_len);
            gk_buf_append_char(b, ',');
            append_int(b, item->n);
            gk_buf_append_cstr(b, "\r\n");
        }
    }
}

/* A raw response: {"status", "headers": {"content-type", ...}, "body"}. */
static uint64_t return_text(int status, const char *content_type, const char *disposition,
                            const gk_buf *body) {
    gk_buf out = GK_BUF_INIT;
    gk_json_object_begin(&out);
    gk_json_key(&out, "status");
    gk_json_int(&out, status);
    gk_json_key(&out, "headers");
    gk_json_object_begin(&out);
    gk_json_key(&out, "content-type");
    gk_json_cstr(&out, content_type);
    if (disposition) {
        gk_json_key(&out, "content-disposition");
        gk_json_cstr(&out, disposition);
    }
    gk_json_object_end(&out);
    gk_json_key(&out, "body");
    gk_json_string(&out, body->data ? body->data : "", body->len);
    gk_json_object_end(&out);
    return gk_return_buf(&out);
}

/* GET /stats/export.csv?from=&to=: the summary as a CSV download; a refused
 * range is a 422 with the message as plain text. */
static uint64_t fn_export_csv(const char *args, size_t len) {
    range r;
    input_error err;
    summary s;
    gk_buf body = GK_BUF_INIT;
    char disposition[80];
    uint64_t result;
    if (!read_range(args, len, today(), DEFAULT_DAYS, &r, &err)) {
        gk_buf_append_cstr(&body, err.message);
        gk_buf_append_char(&body, '\n');
        result = return_text(422, "text/plain; charset=utf-8", NULL, &body);
        gk_buf_free(&body);
        return result;
    }
    if (!load_summary(&r, &s)) {
        summary_free(&s);
        return return_last_error("reading the tickets");
    }
    write_csv(&body, &s);
    summary_free(&s);
    snprintf(disposition, sizeof disposition, "attachment; filename=\"tickets-%s-%s.csv\"",
             r.from_s, r.to_s);
    result = return_text(200, "text/csv; charset=utf-8", disposition, &body);
    gk_buf_free(&body);
    return result;
}

/* The dashboard widget: {"template": "widget.html", "context": {"open",
 * "total", "from", "to", "max", "per_day": [{"day", "created"}] x 14}}. */
static uint64_t fn_widget(void) {
    range r;
    int64_t open, total, created[WIDGET_DAYS] = {0}, max = 0;
    gk_buf out = GK_BUF_INIT;
    char day[11];
    int i;
    r.to = today();
    r.from = r.to - (WIDGET_DAYS - 1);
    format_date(r.from, r.from_s);
    format_date(r.to, r.to_s);
    if (!load_open_count(&open, &total) || !load_per_day(&r, created, NULL, 0))
        return return_last_error("reading the tickets");
    for (i = 0; i < WIDGET_DAYS; i++)
        if (created[i] > max) max = created[i];
    gk_json_object_begin(&out);
    gk_json_key(&out, "template");
    gk_json_cstr(&out, "widget.html");
    gk_json_key(&out, "context");
    gk_json_object_begin(&out);
    gk_json_key(&out, "open");
    gk_json_int(&out, open);
    gk_json_key(&out, "total");
    gk_json_int(&out, total);
    gk_json_key(&out, "from");
    gk_json_cstr(&out, r.from_s);
    gk_json_key(&out, "to");
    gk_json_cstr(&out, r.to_s);
    gk_json_key(&out, "max");
    gk_json_int(&out, max);
    gk_json_key(&out, "per_day");
    gk_json_array_begin(&out);
    for (i = 0; i < WIDGET_DAYS; i++) {
        format_date(r.from + i, day);
        gk_json_object_begin(&out);
        gk_json_key(&out, "day");
        gk_json_cstr(&out, day);
        gk_json_key(&out, "created");
        gk_json_int(&out, created[i]);
        gk_json_object_end(&out);
    }
    gk_json_array_end(&out);
    gk_json_object_end(&out);
    gk_json_object_end(&out);
    return gk_return_buf(&out);
}

/* ------------------------------------------------------------------------ */
/* The report email                                                         */
/* ------------------------------------------------------------------------ */

/* A duration in hours as "45 min", "4 h", "4 h 30 min" or "2 d 3 h". */
static void append_duration(gk_buf *b, double hours) {
    char tmp[48];
    long long minutes = (long long)(hours * 60 + 0.5);
    if (minutes < 60) snprintf(tmp, sizeof tmp, "%lld min", minutes);
    else if (minutes < 24 * 60 && minutes % 60)
        snprintf(tmp, sizeof tmp, "%lld h %lld min", minutes / 60, minutes % 60);
    else if (minutes < 24 * 60) snprintf(tmp, sizeof tmp, "%lld h", minutes / 60);
    else if ((minutes + 30) / 60 % 24)
        snprintf(tmp, sizeof tmp, "%lld d %lld h", (minutes + 30) / 60 / 24,
                 (minutes + 30) / 60 % 24);
    else snprintf(tmp, sizeof tmp, "%lld d", (minutes + 30) / 60 / 24);
    gk_buf_append_cstr(b, tmp);
}

/* Appends text with its line breaks made spaces: a name with a line break
 * must not fake lines of the report. */
static void append_one_line(gk_buf *b, const char *s, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) gk_buf_append_char(b, s[i] == '\n' || s[i] == '\r' ? ' ' : s[i]);
}

/* The plain-text body of the report. */
static void write_report(gk_buf *b, const summary *s) {
    size_t i;
    int d;
    char day[11];
    gk_buf_append_cstr(b, "Helpdesk report ");
    gk_buf_append_cstr(b, s->r.from_s);
    gk_buf_append_cstr(b, " to ");
    gk_buf_append_cstr(b, s->r.to_s);
    gk_buf_append_cstr(b, "\n\nTickets created: ");
    append_int(b, s->total);
    gk_buf_append_cstr(b, "\nClosed (of these): ");
    append_int(b, s->closed);
    gk_buf_append_cstr(b, "\nTickets closed in the period: ");
    append_int(b, s->closed_in_range);
    gk_buf_append_cstr(b, "\nMedian time to close: ");
    if (s->has_median) {
        char hours[40];
        append_duration(b, s->median_hours);
        snprintf(hours, sizeof hours, " (%.2f hours)", s->median_hours);
        gk_buf_append_cstr(b, hours);
    } else
        gk_buf_append_cstr(b, "-");
    gk_buf_append_char(b, '\n');
    for (d = 0; d < DIM_COUNT; d++) {
        gk_buf_append_cstr(b, "\nBy ");
        gk_buf_append_cstr(b, DIM_NAMES[d]);
        gk_buf_append_cstr(b, ":\n");
        for (i = 0; i < s->g.len; i++) {
            const group *item = &s->g.items[i];
            if (item->dim != d) continue;
            gk_buf_append_cstr(b, "  ");
            append_one_line(b, item->key, item->key_len);
            gk_buf_append_cstr(b, ": ");
            append_int(b, item->n);
            gk_buf_append_char(b, '\n');
        }
    }
    gk_buf_append_cstr(b, "\nPer day (created / closed):\n");
    for (i = 0; i < (size_t)s->days; i++) {
        format_date(s->r.from + (int64_t)i, day);
        gk_buf_append_cstr(b, "  ");
        gk_buf_append_cstr(b, day);
        gk_buf_append_cstr(b, ": ");
        append_int(b, s->created[i]);
        gk_buf_append_cstr(b, " / ");
        append_int(b, s->closed_per_day[i]);
        gk_buf_append_char(b, '\n');
    }
}

/* Reads the string config `key` into out. Returns 1 if it is set. */
static int config_string(const char *key, gk_buf *out) {
    gk_buf res = GK_BUF_INIT;
    int ok = gk_config_get(key, &res) && gk_json_get_string(res.data, res.len, "value", out);
    gk_buf_free(&res);
    return ok;
}

/* Reads the whole-number config `key` (a number, or a string of digits, as
 * a host override may give it): 1 with *number set, 0 when it is not set,
 * -1 when it is set to something else. */
static int config_int(const char *key, int64_t *number) {
    gk_buf res = GK_BUF_INIT, text = GK_BUF_INIT;
    gk_slice v;
    double d;
    int found = 0;
    if (gk_config_get(key, &res)) {
        int type = gk_json_find(res.data, res.len, "value", &v);
        if (type == GK_JSON_NUMBER) {
            found = gk_json_get_double(res.data, res.len, "value", &d) && d >= -1e9 && d <= 1e9 &&
                            d == (double)(int64_t)d
                        ? 1
                        : -1;
            if (found == 1) *number = (int64_t)d;
        } else if (type == GK_JSON_STRING) {
            found = gk_json_decode_string(v.ptr, v.len, &text) && text.len > 0 && text.len < 10 &&
                            read_digits(text.data, text.len, number)
                        ? 1
                        : -1;
        } else if (type != GK_JSON_NULL && type != GK_JSON_MISSING)
            found = -1;
    }
    gk_buf_free(&res);
    gk_buf_free(&text);
    return found;
}

/* Mails the report of a range to config report_to. With no "from"/"to" the
 * range is the last report_days complete days (up to yesterday).
 * Returns {"sent": true, "recipient", "from", "to", "total"}. */
static uint64_t fn_send_report(const char *args, size_t len) {
    range r;
    input_error err;
    summary s;
    int64_t days = 7;
    gk_buf to = GK_BUF_INIT, subject = GK_BUF_INIT, body = GK_BUF_INIT, mail = GK_BUF_INIT;
    int ok;
    int found = config_int("report_days", &days);
    if (found < 0 || (found && (days < 1 || days > MAX_DAYS)))
        return gk_return_error("bad_config", "report_days: expected a whole number of days, 1-366");
    if (!config_string("report_to", &to) || to.len == 0) {
        gk_buf_free(&to);
        return gk_return_error("not_configured", "report_to: set the address to mail to");
    }
    if (!read_range(args, len, today() - 1, days, &r, &err)) {
        gk_buf_free(&to);
        return return_input_error(&err);
    }
    if (!load_summary(&r, &s)) {
        summary_free(&s);
        gk_buf_free(&to);
        return return_last_error("reading the tickets");
    }
    /* "Helpdesk report 2026-01-05 – 2026-01-09: 9 tickets" (an en dash). */
    gk_buf_append_cstr(&subject, "Helpdesk report ");
    gk_buf_append_cstr(&subject, r.from_s);
    gk_buf_append_cstr(&subject, " \xe2\x80\x93 ");
    gk_buf_append_cstr(&subject, r.to_s);
    gk_buf_append_cstr(&subject, ": ");
    append_int(&subject, s.total);
    gk_buf_append_cstr(&subject, s.total == 1 ? " ticket" : " tickets");
    write_report(&body, &s);

    gk_json_object_begin(&mail);
    gk_json_key(&mail, "to");
    gk_json_string(&mail, to.data, to.len);
    gk_json_key(&mail, "subject");
    gk_json_string(&mail, subject.data, subject.len);
    gk_json_key(&mail, "body");
    gk_json_string(&mail, body.data, body.len);
    gk_json_key(&mail, "html");
    gk_json_bool(&mail, 0);
    gk_json_object_end(&mail);
    ok = !mail.oom && gk_host_call_json_n("send_email", mail.data, mail.len, NULL, NULL);
    gk_buf_free(&subject);
    gk_buf_free(&body);
    gk_buf_free(&mail);
    if (!ok) {
        summary_free(&s);
        gk_buf_free(&to);
        return return_last_error("sending the report");
    }
    gk_json_object_begin(&mail);
    gk_json_key(&mail, "sent");
    gk_json_bool(&mail, 1);
    gk_json_key(&mail, "recipient");
    gk_json_string(&mail, to.data, to.len);
    gk_json_key(&mail, "from");
    gk_json_cstr(&mail, r.from_s);
    gk_json_key(&mail, "to");
    gk_json_cstr(&mail, r.to_s);
    gk_json_key(&mail, "total");
    gk_json_int(&mail, s.total);
    gk_json_object_end(&mail);
    summary_free(&s);
    gk_buf_free(&to);
    gk_log_info("report mailed");
    return gk_return_buf(&mail);
}

uint64_t gk_call(const char *fn, size_t fn_len, const char *args, size_t args_len) {
    if (gk_fn_is(fn, fn_len, "summary")) return fn_summary(args, args_len);
    if (gk_fn_is(fn, fn_len, "open_count")) return fn_open_count();
    if (gk_fn_is(fn, fn_len, "page")) return fn_page(args, args_len);
    if (gk_fn_is(fn, fn_len, "export_csv")) return fn_export_csv(args, args_len);
    if (gk_fn_is(fn, fn_len, "widget")) return fn_widget();
    if (gk_fn_is(fn, fn_len, "send_report")) return fn_send_report(args, args_len);
    return gk_return_error("unknown_function", "stats has no such function");
}
