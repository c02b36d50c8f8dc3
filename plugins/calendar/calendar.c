/*
 * calendar: appointments with time zones, month and week views, iCalendar
 * export and e-mail reminders, in the plugin's own tables.
 *
 * Time zones without a tz database
 * --------------------------------
 * The WASM guest has no tz database, so an appointment is entered as a
 * local wall time, an IANA zone name and that zone's UTC offset at that
 * moment (the form's script fills the offsets from the browser's Intl API;
 * the JSON API takes "2026-01-05T10:00:00+01:00"). The plugin stores both
 * the local text (for the views, which list appointments by their local
 * date) and the UTC instants (for the feed, ordering and reminders).
 *
 * Storage: one table, calendar_appointments, created on first use in an
 * instance with the DDL of the database behind db_exec (gk_db_dialect).
 * All timestamps are ISO-8601 text: UTC ones as YYYY-MM-DDTHH:MM:SSZ and
 * local ones as YYYY-MM-DDTHH:MM:SS, both sortable as text.
 *
 * Pages are Jinja templates (templates/); this file returns their context.
 * Build with ./build.sh.
 */
#include "goatkit.h"

#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Registration                                                             */
/* ------------------------------------------------------------------------ */

static const char REGISTRATION[] =
    "{"
    "\"name\":\"calendar\","
    "\"version\":\"1.0.0\","
    "\"description\":\"Calendar and appointments with time zones, month and week views, "
    "an iCalendar feed and e-mail reminders\","
    "\"author\":\"goatkit_asgi contributors\","
    "\"license\":\"Apache-2.0\","
    "\"permissions\":[\"calendar.view\",\"calendar.edit\"],"
    "\"functions\":["
    "{\"name\":\"upcoming\",\"args\":[\"limit\"],\"returns\":\"object\","
    "\"description\":\"Appointments that have not ended, soonest first: "
    "{items: [{id, title, start_local, tzid, start_utc, url}]} (limit 1..50, default 5)\"},"
    "{\"name\":\"create_appointment\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"Creates an appointment from {title, start, end (ISO-8601 with offsets), "
    "tzid, description?, location?, attendee_email?, remind_minutes?}; returns {id, uid}\"}"
    "],"
    "\"routes\":["
    "{\"method\":\"GET\",\"path\":\"/calendar\",\"handler\":\"month_page\","
    "\"permission\":\"calendar.view\",\"description\":\"Month grid (?month=YYYY-MM)\"},"
    "{\"method\":\"GET\",\"path\":\"/calendar/week\",\"handler\":\"week_page\","
    "\"permission\":\"calendar.view\",\"description\":\"ISO week (?date=YYYY-MM-DD)\"},"
    "{\"method\":\"GET\",\"path\":\"/calendar/feed.ics\",\"handler\":\"feed_ics\","
    "\"permission\":\"calendar.view\",\"description\":\"Every appointment as iCalendar\"},"
    "{\"method\":\"GET\",\"path\":\"/calendar/new\",\"handler\":\"new_form\","
    "\"permission\":\"calendar.edit\",\"description\":\"Form for a new appointment\"},"
    "{\"method\":\"POST\",\"path\":\"/calendar/new\",\"handler\":\"create_submit\","
    "\"permission\":\"calendar.edit\",\"description\":\"Creates an appointment\"},"
    "{\"method\":\"GET\",\"path\":\"/calendar/{id:int}\",\"handler\":\"detail_page\","
    "\"permission\":\"calendar.edit\",\"description\":\"An appointment and its edit form\"},"
    "{\"method\":\"POST\",\"path\":\"/calendar/{id:int}\",\"handler\":\"update_submit\","
    "\"permission\":\"calendar.edit\",\"description\":\"Updates an appointment\"},"
    "{\"method\":\"POST\",\"path\":\"/calendar/{id:int}/delete\",\"handler\":\"delete_submit\","
    "\"permission\":\"calendar.edit\",\"description\":\"Deletes an appointment\"},"
    "{\"method\":\"GET\",\"path\":\"/calendar/{id:int}/event.ics\",\"handler\":\"event_ics\","
    "\"permission\":\"calendar.view\",\"description\":\"One appointment as iCalendar\"}"
    "],"
    "\"menu_items\":[{\"id\":\"calendar\",\"label\":\"Calendar\",\"path\":\"/calendar\","
    "\"icon\":\"calendar\",\"location\":\"main\",\"order\":140,"
    "\"permission\":\"calendar.view\"}],"
    "\"jobs\":[{\"id\":\"reminders\",\"handler\":\"send_reminders\",\"schedule\":\"@every 5m\","
    "\"enabled\":true,\"description\":\"Mails due appointment reminders\"}]"
    "}";

uint64_t gk_register(void) { return gk_return_static(REGISTRATION); }

/* ------------------------------------------------------------------------ */
/* Limits                                                                   */
/* ------------------------------------------------------------------------ */

#define MAX_TITLE 200          /* characters */
#define MAX_LOCATION 200       /* characters */
#define MAX_DESCRIPTION 5000   /* characters */
#define MAX_EMAIL 254          /* bytes */
#define MAX_TZID 64            /* bytes */
#define MAX_OFFSET (14 * 60)   /* minutes, either way */
#define MAX_DURATION (31 * 86400)
#define MAX_REMIND 10080       /* minutes: one week */
#define MAX_VIEW_ROWS 1000     /* appointments one month or week page lists */
#define FEED_PAGE 200          /* rows per db_query while writing the feed */
#define FEED_MAX_BYTES (3u << 20) /* the feed stops there (memory cap 16 MB) */
#define REMIND_BATCH 100       /* reminders one run sends at most */
#define MAX_ERRORS 16

/* Appends a JSON literal written in the source as the next value. */
#define JSON_LIT(b, lit) gk_json_raw((b), (lit), sizeof(lit) - 1)

/* ------------------------------------------------------------------------ */
/* Small string helpers                                                     */
/* ------------------------------------------------------------------------ */

static const char *buf_str(const gk_buf *b) { return b->data ? b->data : ""; }

/* Removes leading and trailing ASCII white space. */
static void buf_trim(gk_buf *b) {
    size_t start = 0, end = b->len;
    if (!b->data) return;
    while (start < end && strchr(" \t\r\n\f\v", b->data[start])) start++;
    while (end > start && strchr(" \t\r\n\f\v", b->data[end - 1])) end--;
    memmove(b->data, b->data + start, end - start);
    b->len = end - start;
    b->data[b->len] = '\0';
}

/* Control characters become spaces (for one-line fields such as the title). */
static void buf_one_line(gk_buf *b) {
    size_t i;
    for (i = 0; i < b->len; i++) {
        unsigned char c = (unsigned char)b->data[i];
        if (c < 0x20 || c == 0x7f) b->data[i] = ' ';
    }
}

/* CRLF and CR become LF; other control characters but tab are dropped. */
static void buf_multi_line(gk_buf *b) {
    size_t i, j = 0;
    for (i = 0; i < b->len; i++) {
        unsigned char c = (unsigned char)b->data[i];
        if (c == '\r') {
            b->data[j++] = '\n';
            if (i + 1 < b->len && b->data[i + 1] == '\n') i++;
        } else if (c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f))
            b->data[j++] = (char)c;
    }
    b->len = j;
    if (b->data) b->data[j] = '\0';
}

/* Characters (code points) of UTF-8 text: bytes that do not continue one. */
static size_t utf8_chars(const char *s, size_t n) {
    size_t i, count = 0;
    for (i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) count++;
    return count;
}

/* A top-level field as text: a string is decoded, a number copied as it is
 * written (form values are strings, JSON callers may send numbers). Returns
 * 1 if the field is a string or a number; out is emptied otherwise. */
static int get_text(const char *json, size_t len, const char *key, gk_buf *out) {
    gk_slice v;
    int type = gk_json_find(json, len, key, &v);
    gk_buf_reset(out);
    if (type == GK_JSON_STRING) return gk_json_decode_string(v.ptr, v.len, out);
    if (type == GK_JSON_NUMBER) {
        gk_buf_append(out, v.ptr, v.len);
        return 1;
    }
    return 0;
}

/* Decoded string field `key` of a row (empty when missing or null). */
static void row_text(gk_slice row, const char *key, gk_buf *out) {
    if (!gk_json_get_string(row.ptr, row.len, key, out)) gk_buf_reset(out);
}

static int64_t row_int(gk_slice row, const char *key) {
    int64_t v = 0;
    if (!gk_json_get_int(row.ptr, row.len, key, &v)) v = 0;
    return v;
}

/* Writes "key": <the row's raw value of `field`> (null when missing). */
static void copy_field(gk_buf *out, gk_slice row, const char *key, const char *field) {
    gk_slice v;
    gk_json_key(out, key);
    if (gk_json_find(row.ptr, row.len, field, &v) > GK_JSON_MISSING) gk_json_raw(out, v.ptr, v.len);
    else gk_json_null(out);
}

/* ------------------------------------------------------------------------ */
/* Calendar arithmetic (proleptic Gregorian, days since 1970-01-01)         */
/* ------------------------------------------------------------------------ */

/* Howard Hinnant's days_from_civil / civil_from_days. */
static int64_t days_from_civil(int64_t y, int m, int d) {
    int64_t era, yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d) {
    int64_t era, doe, yoe, doy, mp, yy;
    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    yy = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

static int is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in_month(int y, int m) {
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* 1 = Monday .. 7 = Sunday; 1970-01-01 was a Thursday. */
static int weekday(int64_t days) { return (int)(floor_div(days + 3, 7) * -7 + days + 3) + 1; }

/* ISO-8601 week number and week-based year of a day. */
static void iso_week(int64_t days, int *iso_year, int *week) {
    int64_t thursday = days - weekday(days) + 4;
    int y, m, d;
    civil_from_days(thursday, &y, &m, &d);
    *iso_year = y;
    *week = (int)((thursday - days_from_civil(y, 1, 1)) / 7) + 1;
}

static int64_t now_epoch(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 0;
    return (int64_t)ts.tv_sec;
}

/* ------------------------------------------------------------------------ */
/* Formatting and parsing of dates, times and offsets                       */
/* ------------------------------------------------------------------------ */

/* "YYYY-MM-DD" of a day number (dst: 11 bytes). */
static void fmt_date(char *dst, int64_t days) {
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(dst, 11, "%04d-%02d-%02d", y, m, d);
}

/* "YYYY-MM" (dst: 8 bytes). */
static void fmt_month(char *dst, int y, int m) { snprintf(dst, 8, "%04d-%02d", y, m); }

/* "YYYY-MM-DDTHH:MM:SSZ" of an instant (dst: 21 bytes). */
static void fmt_utc(char *dst, int64_t t) {
    int64_t days = floor_div(t, 86400), rem = t - days * 86400;
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(dst, 21, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d, (int)(rem / 3600),
             (int)(rem / 60 % 60), (int)(rem % 60));
}

/* "+01:00" / "-05:30" (dst: 7 bytes). */
static void fmt_offset(char *dst, int minutes) {
    int a = minutes < 0 ? -minutes : minutes;
    snprintf(dst, 7, "%c%02d:%02d", minutes < 0 ? '-' : '+', a / 60, a % 60);
}

/* "UTC+01:00", or "UTC" for no offset (dst: 10 bytes). */
static void fmt_offset_label(char *dst, int minutes) {
    char off[7];
    if (minutes == 0) {
        strcpy(dst, "UTC");
        return;
    }
    fmt_offset(off, minutes);
    snprintf(dst, 10, "UTC%s", off);
}

typedef struct {
    int y, mo, d, h, mi, s;
} datetime;

static int digits(const char *s, size_t n, int *out) {
    size_t i;
    int v = 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* "YYYY-MM-DD" exactly, a real date in 1900..9999. */
static int parse_date(const char *s, size_t n, datetime *dt) {
    if (n != 10 || s[4] != '-' || s[7] != '-') return 0;
    if (!digits(s, 4, &dt->y) || !digits(s + 5, 2, &dt->mo) || !digits(s + 8, 2, &dt->d))
        return 0;
    if (dt->y < 1900 || dt->mo < 1 || dt->mo > 12) return 0;
    return dt->d >= 1 && dt->d <= days_in_month(dt->y, dt->mo);
}

/* A UTC offset: "Z", "+HH:MM", "+HHMM" or "+HH" (also '-'), within +-14:00. */
static int parse_offset(const char *s, size_t n, int *minutes) {
    int h = 0, m = 0, sign;
    if (n == 1 && (s[0] == 'Z' || s[0] == 'z')) {
        *minutes = 0;
        return 1;
    }
    if (n < 3 || (s[0] != '+' && s[0] != '-')) return 0;
    sign = s[0] == '-' ? -1 : 1;
    if (!digits(s + 1, 2, &h)) return 0;
    if (n == 6 && s[3] == ':') {
        if (!digits(s + 4, 2, &m)) return 0;
    } else if (n == 5) {
        if (!digits(s + 3, 2, &m)) return 0;
    } else if (n != 3)
        return 0;
    if (m > 59 || h * 60 + m > MAX_OFFSET) return 0;
    *minutes = sign * (h * 60 + m);
    return 1;
}

enum { DT_BAD = 0, DT_OK = 1, DT_BAD_OFFSET = 2 };

/* "YYYY-MM-DDTHH:MM[:SS[.fff]]" with an optional offset (see parse_offset);
 * 'T' may be 't' or a space. Fractions of a second are dropped. Returns
 * DT_OK, DT_BAD (no valid date and time) or DT_BAD_OFFSET. */
static int parse_datetime(const char *s, size_t n, datetime *dt, int *has_offset, int *offset) {
    size_t i = 16;
    *has_offset = 0;
    *offset = 0;
    if (n < 16 || !parse_date(s, 10, dt)) return DT_BAD;
    if ((s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':') return DT_BAD;
    if (!digits(s + 11, 2, &dt->h) || !digits(s + 14, 2, &dt->mi)) return DT_BAD;
    dt->s = 0;
    if (n >= 19 && s[16] == ':') {
        if (!digits(s + 17, 2, &dt->s)) return DT_BAD;
        i = 19;
        if (i < n && s[i] == '.') {
            i++;
            while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        }
    }
    if (dt->h > 23 || dt->mi > 59 || dt->s > 59) return DT_BAD;
    if (i == n) return DT_OK;
    *has_offset = 1;
    return parse_offset(s + i, n - i, offset) ? DT_OK : DT_BAD_OFFSET;
}

static int64_t datetime_epoch(const datetime *dt) {
    return days_from_civil(dt->y, dt->mo, dt->d) * 86400 + dt->h * 3600 + dt->mi * 60 + dt->s;
}

/* "YYYY-MM-DDTHH:MM:SS" (dst: 20 bytes). */
static void fmt_local(char *dst, const datetime *dt) {
    snprintf(dst, 20, "%04d-%02d-%02dT%02d:%02d:%02d", dt->y, dt->mo, dt->d, dt->h, dt->mi, dt->s);
}

/* The instant of a stored UTC text ("...Z"); 0 when it is not one. */
static int parse_utc(const char *s, size_t n, int64_t *t) {
    datetime dt;
    int has, off;
    if (parse_datetime(s, n, &dt, &has, &off) != DT_OK || !has) return 0;
    *t = datetime_epoch(&dt) - (int64_t)off * 60;
    return 1;
}

/* Zone names that mean UTC (the offset is then known: zero). */
static int is_utc_zone(const char *tz) {
    return strcmp(tz, "UTC") == 0 || strcmp(tz, "Etc/UTC") == 0 || strcmp(tz, "GMT") == 0 ||
           strcmp(tz, "Etc/GMT") == 0;
}

/* IANA-like zone name: ASCII letters, digits, '/', '_', '-', '+'; 1..64. */
static int valid_tzid(const char *s, size_t n) {
    size_t i;
    if (n == 0 || n > MAX_TZID) return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '/' || c == '_' || c == '-' || c == '+'))
            return 0;
    }
    return 1;
}

/* A simple address check: one '@', a dotted domain, nothing odd. */
static int valid_email(const char *s, size_t n) {
    const char *at = memchr(s, '@', n);
    size_t i, local, domain;
    if (n > MAX_EMAIL || !at) return 0;
    local = (size_t)(at - s);
    domain = n - local - 1;
    if (local == 0 || local > 64 || domain < 3 || memchr(at + 1, '@', domain)) return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || strchr("<>()[]\\,;:\"", c)) return 0;
    }
    if (!memchr(at + 1, '.', domain) || at[1] == '.' || s[n - 1] == '.' || strstr(s, ".."))
        return 0;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Host errors and the database                                             */
/* ------------------------------------------------------------------------ */

/* Returns the last failed host call as this call's error (same code). */
static uint64_t return_host_error(const char *what) {
    gk_buf code = GK_BUF_INIT, message = GK_BUF_INIT, text = GK_BUF_INIT;
    uint64_t r;
    gk_last_error_parts(&code, &message);
    gk_buf_append_cstr(&text, what);
    gk_buf_append_cstr(&text, ": ");
    gk_buf_append(&text, message.data, message.len);
    gk_logf(GK_LOG_WARN, "%s failed: %s", what, buf_str(&code));
    r = gk_return_error(buf_str(&code), buf_str(&text));
    gk_buf_free(&code);
    gk_buf_free(&message);
    gk_buf_free(&text);
    return r;
}

static int db_exec_sql(const char *sql) {
    gk_buf stmt = GK_BUF_INIT;
    int ok;
    gk_sql_begin(&stmt, sql);
    gk_sql_end(&stmt);
    ok = gk_db_exec(&stmt, NULL);
    gk_buf_free(&stmt);
    return ok;
}

static const char DDL_SQLITE[] =
    "CREATE TABLE IF NOT EXISTS calendar_appointments ("
    "id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, title TEXT NOT NULL, "
    "description TEXT NOT NULL DEFAULT '', location TEXT NOT NULL DEFAULT '', "
    "start_utc TEXT NOT NULL, end_utc TEXT NOT NULL, tzid TEXT NOT NULL, "
    "start_local TEXT NOT NULL, end_local TEXT NOT NULL, offset_minutes INTEGER NOT NULL, "
    "end_offset_minutes INTEGER NOT NULL, attendee_email TEXT, "
    "remind_minutes INTEGER NOT NULL DEFAULT 0, remind_at TEXT, reminded_at TEXT, "
    "created_at TEXT NOT NULL, updated_at TEXT NOT NULL)";

/* COLLATE "C": the text timestamps must compare byte by byte. */
static const char DDL_POSTGRES[] =
    "CREATE TABLE IF NOT EXISTS calendar_appointments ("
    "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, uid TEXT NOT NULL UNIQUE, "
    "title TEXT NOT NULL, description TEXT NOT NULL DEFAULT '', "
    "location TEXT NOT NULL DEFAULT '', start_utc TEXT COLLATE \"C\" NOT NULL, "
    "end_utc TEXT COLLATE \"C\" NOT NULL, tzid TEXT NOT NULL, "
    "start_local TEXT COLLATE \"C\" NOT NULL, end_local TEXT COLLATE \"C\" NOT NULL, "
    "offset_minutes INTEGER NOT NULL, end_offset_minutes INTEGER NOT NULL, "
    "attendee_email TEXT, remind_minutes INTEGER NOT NULL DEFAULT 0, "
    "remind_at TEXT COLLATE \"C\", reminded_at TEXT, created_at TEXT NOT NULL, "
    "updated_at TEXT NOT NULL)";

static const char *const INDEXES[] = {
    "CREATE INDEX IF NOT EXISTS calendar_appointments_start_local "
    "ON calendar_appointments (start_local)",
    "CREATE INDEX IF NOT EXISTS calendar_appointments_start_utc "
    "ON calendar_appointments (start_utc)",
    "CREATE INDEX IF NOT EXISTS calendar_appointments_remind_at "
    "ON calendar_appointments (remind_at)",
    "CREATE INDEX IF NOT EXISTS calendar_appointments_end_utc "
    "ON calendar_appointments (end_utc)",
};

/* Creates the table on first use in this instance. Returns 0 with the host
 * error pending on failure. */
static int ensure_schema(void) {
    static int ready = 0;
    size_t i;
    int dialect;
    if (ready) return 1;
    dialect = gk_db_dialect();
    if (dialect == GK_DB_UNKNOWN) return 0;
    if (!db_exec_sql(dialect == GK_DB_POSTGRES ? DDL_POSTGRES : DDL_SQLITE)) return 0;
    for (i = 0; i < sizeof INDEXES / sizeof INDEXES[0]; i++)
        if (!db_exec_sql(INDEXES[i])) return 0;
    ready = 1;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Results                                                                  */
/* ------------------------------------------------------------------------ */

/* {"template": name, "status": status, "context": {  ...  }} */
static void template_begin(gk_buf *b, const char *name, int status) {
    gk_json_object_begin(b);
    gk_json_key(b, "template");
    gk_json_cstr(b, name);
    gk_json_key(b, "status");
    gk_json_int(b, status);
    gk_json_key(b, "context");
    gk_json_object_begin(b);
}

static uint64_t template_end(gk_buf *b) {
    gk_json_object_end(b);
    gk_json_object_end(b);
    return gk_return_buf(b);
}

/* A 303 redirect to the month view: "../calendar?month=YYYY-MM&notice=..."
 * (up: how many "../", 1 from /calendar/new or /calendar/{id}, 2 from
 * /calendar/{id}/delete). The Location is relative (RFC 7231 7.1.2) because
 * the plugin cannot see where the host mounts the app (root_path): the
 * browser resolves it against the URL it posted to, prefix included. */
static uint64_t redirect_to_month(int up, const char *local, const char *notice) {
    gk_buf loc = GK_BUF_INIT, out = GK_BUF_INIT;
    while (up-- > 0) gk_buf_append_cstr(&loc, "../");
    gk_buf_append_cstr(&loc, "calendar?month=");
    gk_buf_append(&loc, local, 7);
    gk_buf_append_cstr(&loc, "&notice=");
    gk_buf_append_cstr(&loc, notice);
    gk_json_object_begin(&out);
    gk_json_key(&out, "status");
    gk_json_int(&out, 303);
    gk_json_key(&out, "headers");
    gk_json_object_begin(&out);
    gk_json_key(&out, "location");
    gk_json_string(&out, buf_str(&loc), loc.len);
    gk_json_object_end(&out);
    gk_json_key(&out, "body");
    gk_json_cstr(&out, "");
    gk_json_object_end(&out);
    gk_buf_free(&loc);
    return gk_return_buf(&out);
}

static uint64_t not_found_page(int64_t id) {
    gk_buf out = GK_BUF_INIT;
    template_begin(&out, "not_found.html", 404);
    gk_json_key(&out, "id");
    gk_json_int(&out, id);
    return template_end(&out);
}

/* ------------------------------------------------------------------------ */
/* Appointment input: reading and validating                                */
/* ------------------------------------------------------------------------ */

typedef struct {
    const char *field; /* form field it belongs to */
    const char *key;   /* i18n key of the message (templates translate it) */
    const char *text;  /* the English message (for the JSON API) */
} field_error;

typedef struct {
    /* as submitted (trimmed) */
    gk_buf title, description, location, tzid, email, start, end, start_off, end_off, remind;
    /* results, valid when n_errors == 0 */
    char start_local[20], end_local[20], start_utc[21], end_utc[21];
    int start_offset, end_offset;
    int64_t start_t, end_t, remind_minutes;
    int start_ok, end_ok; /* the local times parsed (for echoing them normalised) */
    field_error errors[MAX_ERRORS];
    int n_errors;
} appt_input;

static void input_init(appt_input *in) { memset(in, 0, sizeof *in); }

static void input_free(appt_input *in) {
    gk_buf_free(&in->title);
    gk_buf_free(&in->description);
    gk_buf_free(&in->location);
    gk_buf_free(&in->tzid);
    gk_buf_free(&in->email);
    gk_buf_free(&in->start);
    gk_buf_free(&in->end);
    gk_buf_free(&in->start_off);
    gk_buf_free(&in->end_off);
    gk_buf_free(&in->remind);
}

static void add_error(appt_input *in, const char *field, const char *key, const char *text) {
    if (in->n_errors < MAX_ERRORS) {
        in->errors[in->n_errors].field = field;
        in->errors[in->n_errors].key = key;
        in->errors[in->n_errors].text = text;
        in->n_errors++;
    }
}

static int has_error(const appt_input *in, const char *field) {
    int i;
    for (i = 0; i < in->n_errors; i++)
        if (strcmp(in->errors[i].field, field) == 0) return 1;
    return 0;
}

/* One end of the appointment: local text + offset (from the text itself, or
 * the separate offset field, or zero for a UTC zone). */
static void parse_when(appt_input *in, const char *field, const gk_buf *text,
                       const gk_buf *offset_field, int tz_ok, int is_start) {
    datetime dt;
    int has, off, r;
    char *local = is_start ? in->start_local : in->end_local;
    char *utc = is_start ? in->start_utc : in->end_utc;
    int64_t t;
    if (text->len == 0) {
        add_error(in, field, is_start ? "err_start_required" : "err_end_required",
                  is_start ? "Enter the start date and time." : "Enter the end date and time.");
        return;
    }
    r = parse_datetime(text->data, text->len, &dt, &has, &off);
    if (r == DT_BAD) {
        add_error(in, field, is_start ? "err_start_invalid" : "err_end_invalid",
                  is_start ? "The start is not a valid date and time (YYYY-MM-DDTHH:MM)."
                           : "The end is not a valid date and time (YYYY-MM-DDTHH:MM).");
        return;
    }
    fmt_local(local, &dt);
    if (is_start) in->start_ok = 1;
    else in->end_ok = 1;
    if (r == DT_BAD_OFFSET) {
        add_error(in, field, "err_offset_invalid",
                  "The UTC offset must be between -14:00 and +14:00 (like +01:00).");
        return;
    }
    if (!has && offset_field->len > 0) {
        has = 1;
        if (!parse_offset(offset_field->data, offset_field->len, &off)) {
            add_error(in, field, "err_offset_invalid",
                      "The UTC offset must be between -14:00 and +14:00 (like +01:00).");
            return;
        }
    }
    if (!tz_ok) return; /* the zone is wrong already: nothing more to say */
    if (!has) {
        if (!is_utc_zone(in->tzid.data)) {
            add_error(in, field, "err_offset_missing",
                      "The UTC offset for this time zone is unknown: enable JavaScript so the "
                      "form can fill it in, send the time with an offset "
                      "(2026-01-05T10:00:00+01:00), or choose UTC.");
            return;
        }
        off = 0;
    } else if (off != 0 && is_utc_zone(in->tzid.data)) {
        add_error(in, field, "err_offset_utc", "The time zone UTC has the offset +00:00.");
        return;
    }
    t = datetime_epoch(&dt) - (int64_t)off * 60;
    if (t < days_from_civil(1900, 1, 1) * 86400 || t >= days_from_civil(10000, 1, 1) * 86400) {
        add_error(in, field, is_start ? "err_start_invalid" : "err_end_invalid",
                  is_start ? "The start is not a valid date and time (YYYY-MM-DDTHH:MM)."
                           : "The end is not a valid date and time (YYYY-MM-DDTHH:MM).");
        return;
    }
    fmt_utc(utc, t);
    if (is_start) {
        in->start_offset = off;
        in->start_t = t;
    } else {
        in->end_offset = off;
        in->end_t = t;
    }
}

/* Reads and checks an appointment from the flat request object or the
 * JSON API's object. Errors are collected in in->errors. */
static void read_input(appt_input *in, const char *args, size_t len) {
    int tz_ok;
    size_t i;
    get_text(args, len, "title", &in->title);
    get_text(args, len, "description", &in->description);
    get_text(args, len, "location", &in->location);
    get_text(args, len, "tzid", &in->tzid);
    get_text(args, len, "attendee_email", &in->email);
    get_text(args, len, "start", &in->start);
    get_text(args, len, "end", &in->end);
    get_text(args, len, "start_offset", &in->start_off);
    get_text(args, len, "end_offset", &in->end_off);
    get_text(args, len, "remind_minutes", &in->remind);
    buf_one_line(&in->title);
    buf_trim(&in->title);
    buf_one_line(&in->location);
    buf_trim(&in->location);
    buf_multi_line(&in->description);
    buf_trim(&in->tzid);
    buf_trim(&in->email);
    buf_trim(&in->start);
    buf_trim(&in->end);
    buf_trim(&in->start_off);
    buf_trim(&in->end_off);
    buf_trim(&in->remind);
    gk_buf_reserve(&in->tzid, 0); /* data non-NULL from here on */

    if (in->title.len == 0)
        add_error(in, "title", "err_title_required", "Enter a title.");
    else if (utf8_chars(in->title.data, in->title.len) > MAX_TITLE)
        add_error(in, "title", "err_title_too_long", "The title may have at most 200 characters.");
    if (utf8_chars(buf_str(&in->location), in->location.len) > MAX_LOCATION)
        add_error(in, "location", "err_location_too_long",
                  "The location may have at most 200 characters.");
    if (utf8_chars(buf_str(&in->description), in->description.len) > MAX_DESCRIPTION)
        add_error(in, "description", "err_description_too_long",
                  "The description may have at most 5000 characters.");

    tz_ok = 0;
    if (in->tzid.len == 0)
        add_error(in, "tzid", "err_tz_required", "Choose a time zone.");
    else if (!valid_tzid(in->tzid.data, in->tzid.len))
        add_error(in, "tzid", "err_tz_invalid",
                  "The time zone name is not valid (letters, digits, '/', '_', '-', '+'; at most "
                  "64 characters).");
    else
        tz_ok = 1;

    parse_when(in, "start", &in->start, &in->start_off, tz_ok, 1);
    parse_when(in, "end", &in->end, &in->end_off, tz_ok, 0);
    if (!has_error(in, "start") && !has_error(in, "end") && tz_ok) {
        if (in->end_t <= in->start_t)
            add_error(in, "end", "err_end_before_start", "The end must be after the start.");
        else if (in->end_t - in->start_t > MAX_DURATION)
            add_error(in, "end", "err_too_long", "An appointment may last at most 31 days.");
    }

    if (in->email.len > 0 && !valid_email(in->email.data, in->email.len))
        add_error(in, "attendee_email", "err_email_invalid",
                  "The attendee's e-mail address is not valid (like name@example.com).");

    in->remind_minutes = 0;
    if (in->remind.len > 0) {
        int64_t v = 0;
        int ok = in->remind.len <= 6;
        for (i = 0; ok && i < in->remind.len; i++) {
            if (in->remind.data[i] < '0' || in->remind.data[i] > '9') ok = 0;
            else v = v * 10 + (in->remind.data[i] - '0');
        }
        if (!ok || v > MAX_REMIND)
            add_error(in, "remind_minutes", "err_remind_invalid",
                      "The reminder must be a whole number of minutes from 0 to 10080 (a week).");
        else
            in->remind_minutes = v;
    }
    if (in->remind_minutes > 0 && in->email.len == 0 && !has_error(in, "attendee_email"))
        add_error(in, "attendee_email", "err_remind_needs_email",
                  "A reminder needs the attendee's e-mail address.");
}

/* "errors": [{"field", "key", "message"}] */
static void write_errors(gk_buf *out, const appt_input *in) {
    int i;
    gk_json_key(out, "errors");
    gk_json_array_begin(out);
    for (i = 0; i < in->n_errors; i++) {
        gk_json_object_begin(out);
        gk_json_key(out, "field");
        gk_json_cstr(out, in->errors[i].field);
        gk_json_key(out, "key");
        gk_json_cstr(out, in->errors[i].key);
        gk_json_key(out, "message");
        gk_json_cstr(out, in->errors[i].text);
        gk_json_object_end(out);
    }
    gk_json_array_end(out);
}

/* The form's values as submitted; times that parsed are echoed as
 * "YYYY-MM-DDTHH:MM" so <input type="datetime-local"> shows them. */
static void write_values(gk_buf *out, const appt_input *in) {
    gk_json_key(out, "values");
    gk_json_object_begin(out);
    gk_json_key(out, "title");
    gk_json_string(out, buf_str(&in->title), in->title.len);
    gk_json_key(out, "description");
    gk_json_string(out, buf_str(&in->description), in->description.len);
    gk_json_key(out, "location");
    gk_json_string(out, buf_str(&in->location), in->location.len);
    gk_json_key(out, "tzid");
    gk_json_string(out, buf_str(&in->tzid), in->tzid.len);
    gk_json_key(out, "start");
    if (in->start_ok) gk_json_string(out, in->start_local, 16);
    else gk_json_string(out, buf_str(&in->start), in->start.len);
    gk_json_key(out, "end");
    if (in->end_ok) gk_json_string(out, in->end_local, 16);
    else gk_json_string(out, buf_str(&in->end), in->end.len);
    gk_json_key(out, "start_offset");
    gk_json_string(out, buf_str(&in->start_off), in->start_off.len);
    gk_json_key(out, "end_offset");
    gk_json_string(out, buf_str(&in->end_off), in->end_off.len);
    gk_json_key(out, "attendee_email");
    gk_json_string(out, buf_str(&in->email), in->email.len);
    gk_json_key(out, "remind_minutes");
    gk_json_string(out, buf_str(&in->remind), in->remind.len);
    gk_json_object_end(out);
}

/* Appends the columns shared by INSERT and UPDATE, in this order: title,
 * description, location, start_utc, end_utc, tzid, start_local, end_local,
 * offset_minutes, end_offset_minutes, attendee_email, remind_minutes,
 * remind_at (when the reminder is due, so the job asks the database for
 * exactly the due ones; NULL without a reminder). */
static void append_columns(gk_buf *stmt, const appt_input *in) {
    char remind_at[21];
    gk_json_string(stmt, buf_str(&in->title), in->title.len);
    gk_json_string(stmt, buf_str(&in->description), in->description.len);
    gk_json_string(stmt, buf_str(&in->location), in->location.len);
    gk_json_cstr(stmt, in->start_utc);
    gk_json_cstr(stmt, in->end_utc);
    gk_json_string(stmt, buf_str(&in->tzid), in->tzid.len);
    gk_json_cstr(stmt, in->start_local);
    gk_json_cstr(stmt, in->end_local);
    gk_json_int(stmt, in->start_offset);
    gk_json_int(stmt, in->end_offset);
    if (in->email.len) gk_json_string(stmt, in->email.data, in->email.len);
    else gk_json_null(stmt);
    gk_json_int(stmt, in->remind_minutes);
    if (in->remind_minutes > 0 && in->email.len) {
        fmt_utc(remind_at, in->start_t - in->remind_minutes * 60);
        gk_json_cstr(stmt, remind_at);
    } else
        gk_json_null(stmt);
}

/* Inserts a valid input; uid (gk_buf) gets the new UID, *id the new id.
 * Returns 0 with the host error pending on failure. */
static int insert_appointment(const appt_input *in, gk_buf *uid, int64_t *id) {
    gk_buf stmt = GK_BUF_INIT, rows = GK_BUF_INIT;
    unsigned char rnd[8];
    char now[21], hex[17];
    int64_t t = now_epoch();
    size_t i;
    int ok;
    gk_slice row;
    gk_json_iter it;
    int type;

    /* <created, compact UTC>-<64 random bits>@goatkit: unique without
     * knowing the id, which the database assigns. */
    if (getentropy(rnd, sizeof rnd) != 0) {
        uint64_t x = (uint64_t)t * 6364136223846793005ULL + (uint64_t)(uintptr_t)in;
        memcpy(rnd, &x, sizeof rnd);
    }
    for (i = 0; i < sizeof rnd; i++) snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    fmt_utc(now, t);
    gk_buf_reset(uid);
    gk_buf_append(uid, now, 4);
    gk_buf_append(uid, now + 5, 2);
    gk_buf_append(uid, now + 8, 5);
    gk_buf_append(uid, now + 14, 2);
    gk_buf_append(uid, now + 17, 3);
    gk_buf_append_char(uid, '-');
    gk_buf_append_cstr(uid, hex);
    gk_buf_append_cstr(uid, "@goatkit");

    gk_sql_begin(&stmt,
              "INSERT INTO calendar_appointments (title, description, location, start_utc, "
              "end_utc, tzid, start_local, end_local, offset_minutes, end_offset_minutes, "
              "attendee_email, remind_minutes, remind_at, uid, created_at, updated_at) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    append_columns(&stmt, in);
    gk_json_string(&stmt, buf_str(uid), uid->len);
    gk_json_cstr(&stmt, now);
    gk_json_cstr(&stmt, now);
    gk_sql_end(&stmt);
    ok = gk_db_exec(&stmt, NULL);
    if (ok) {
        gk_sql_begin(&stmt, "SELECT id FROM calendar_appointments WHERE uid = ?");
        gk_json_string(&stmt, buf_str(uid), uid->len);
        gk_sql_end(&stmt);
        ok = gk_db_query(&stmt, &rows);
        *id = 0;
        if (ok && gk_json_iter_begin(&it, rows.data, rows.len, '[') &&
            gk_json_iter_next(&it, NULL, &row, &type))
            *id = row_int(row, "id");
    }
    gk_buf_free(&stmt);
    gk_buf_free(&rows);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Reading appointments                                                     */
/* ------------------------------------------------------------------------ */

#define APPT_COLUMNS                                                                        \
    "id, uid, title, description, location, start_utc, end_utc, tzid, start_local, "        \
    "end_local, offset_minutes, end_offset_minutes, attendee_email, remind_minutes, "       \
    "reminded_at, created_at, updated_at"

/* The id path parameter; 0 when it is missing or absurd. */
static int64_t arg_id(const char *args, size_t len) {
    int64_t id = 0;
    if (!gk_json_get_int(args, len, "id", &id) || id <= 0) return 0;
    return id;
}

/* Loads appointment id into row (a copy of the row object). Returns 1 if
 * found, 0 if not, -1 on a host error (pending). */
static int load_appointment(int64_t id, gk_buf *row) {
    gk_buf stmt = GK_BUF_INIT, rows = GK_BUF_INIT;
    gk_json_iter it;
    gk_slice r;
    int type, found = 0;
    gk_buf_reset(row);
    gk_sql_begin(&stmt, "SELECT " APPT_COLUMNS " FROM calendar_appointments WHERE id = ?");
    gk_json_int(&stmt, id);
    gk_sql_end(&stmt);
    if (!gk_db_query(&stmt, &rows)) found = -1;
    else if (gk_json_iter_begin(&it, rows.data, rows.len, '[') &&
             gk_json_iter_next(&it, NULL, &r, &type) && type == GK_JSON_OBJECT) {
        gk_buf_append(row, r.ptr, r.len);
        found = 1;
    }
    gk_buf_free(&stmt);
    gk_buf_free(&rows);
    return found;
}

/* "HH:MM" of a local text (dst: 6 bytes). */
static void time_of(char *dst, const gk_buf *local) {
    if (local->len >= 16) {
        memcpy(dst, local->data + 11, 5);
        dst[5] = '\0';
    } else
        dst[0] = '\0';
}

/* One appointment as a view item: id, title, location, tzid, start_local,
 * end_local, date, time, end_date, end_time, multi_day, offset_label,
 * end_offset_label, start_utc, end_utc. */
static void write_item(gk_buf *out, gk_slice row) {
    gk_buf start = GK_BUF_INIT, end = GK_BUF_INIT;
    char t[6], label[10];
    int multi;
    row_text(row, "start_local", &start);
    row_text(row, "end_local", &end);
    gk_json_object_begin(out);
    copy_field(out, row, "id", "id");
    copy_field(out, row, "title", "title");
    copy_field(out, row, "location", "location");
    copy_field(out, row, "tzid", "tzid");
    copy_field(out, row, "start_local", "start_local");
    copy_field(out, row, "end_local", "end_local");
    copy_field(out, row, "start_utc", "start_utc");
    copy_field(out, row, "end_utc", "end_utc");
    gk_json_key(out, "date");
    gk_json_string(out, buf_str(&start), start.len >= 10 ? 10 : start.len);
    gk_json_key(out, "time");
    time_of(t, &start);
    gk_json_cstr(out, t);
    gk_json_key(out, "end_date");
    gk_json_string(out, buf_str(&end), end.len >= 10 ? 10 : end.len);
    gk_json_key(out, "end_time");
    time_of(t, &end);
    gk_json_cstr(out, t);
    multi = start.len >= 10 && end.len >= 10 && memcmp(start.data, end.data, 10) != 0;
    gk_json_key(out, "multi_day");
    gk_json_bool(out, multi);
    gk_json_key(out, "offset_label");
    fmt_offset_label(label, (int)row_int(row, "offset_minutes"));
    gk_json_cstr(out, label);
    gk_json_key(out, "end_offset_label");
    fmt_offset_label(label, (int)row_int(row, "end_offset_minutes"));
    gk_json_cstr(out, label);
    gk_json_object_end(out);
    gk_buf_free(&start);
    gk_buf_free(&end);
}

/* Appointments whose local start date is in [from, to) (YYYY-MM-DD), in
 * local start order. Returns 0 with the host error pending on failure. */
static int query_range(const char *from, const char *to, gk_buf *rows) {
    gk_buf stmt = GK_BUF_INIT;
    int ok;
    gk_sql_begin(&stmt, "SELECT " APPT_COLUMNS " FROM calendar_appointments "
                     "WHERE start_local >= ? AND start_local < ? "
                     "ORDER BY start_local, start_utc, id LIMIT ?");
    gk_json_cstr(&stmt, from);
    gk_json_cstr(&stmt, to);
    gk_json_int(&stmt, MAX_VIEW_ROWS);
    gk_sql_end(&stmt);
    ok = gk_db_query(&stmt, rows);
    gk_buf_free(&stmt);
    return ok;
}

/* Walks rows sorted by local start, handing out those of one day at a time. */
typedef struct {
    gk_json_iter it;
    gk_slice row;
    int have, count;
    gk_buf start;
} row_cursor;

static void cursor_next(row_cursor *c) {
    int type;
    c->have = gk_json_iter_next(&c->it, NULL, &c->row, &type) && type == GK_JSON_OBJECT;
    if (c->have) {
        row_text(c->row, "start_local", &c->start);
        c->count++;
    }
}

static void cursor_begin(row_cursor *c, const gk_buf *rows) {
    gk_buf_init(&c->start);
    c->count = 0;
    c->have = 0;
    if (gk_json_iter_begin(&c->it, rows->data, rows->len, '[')) cursor_next(c);
}

/* Writes "items": [...] with the rows whose local date is `date`. */
static void write_day_items(gk_buf *out, row_cursor *c, const char *date) {
    gk_json_key(out, "items");
    gk_json_array_begin(out);
    /* Rows are sorted: skip any before the day (none, given the query). */
    while (c->have && c->start.len >= 10 && memcmp(c->start.data, date, 10) < 0) cursor_next(c);
    while (c->have && c->start.len >= 10 && memcmp(c->start.data, date, 10) == 0) {
        write_item(out, c->row);
        cursor_next(c);
    }
    gk_json_array_end(out);
}

/* One day cell: date, day, month_num, year, weekday, in_month, today. */
static void write_day_head(gk_buf *out, int64_t days, int in_month, int64_t today) {
    char date[11];
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    fmt_date(date, days);
    gk_json_key(out, "date");
    gk_json_cstr(out, date);
    gk_json_key(out, "day");
    gk_json_int(out, d);
    gk_json_key(out, "month_num");
    gk_json_int(out, m);
    gk_json_key(out, "year");
    gk_json_int(out, y);
    gk_json_key(out, "weekday");
    gk_json_int(out, weekday(days));
    gk_json_key(out, "in_month");
    gk_json_bool(out, in_month);
    gk_json_key(out, "today");
    gk_json_bool(out, days == today);
}

/* An optional query parameter as text; empty when missing. */
static void query_param(const char *args, size_t len, const char *key, gk_buf *out) {
    get_text(args, len, key, out);
    buf_trim(out);
    gk_buf_reserve(out, 0);
}

/* notice=saved|deleted after a redirect; anything else is ignored. */
static void write_notice(gk_buf *out, const char *args, size_t len) {
    gk_buf notice = GK_BUF_INIT;
    query_param(args, len, "notice", &notice);
    gk_json_key(out, "notice");
    if (strcmp(notice.data, "saved") == 0 || strcmp(notice.data, "deleted") == 0)
        gk_json_string(out, notice.data, notice.len);
    else
        gk_json_null(out);
    gk_buf_free(&notice);
}

/* ------------------------------------------------------------------------ */
/* Route: GET /calendar?month=YYYY-MM                                       */
/* ------------------------------------------------------------------------ */

static uint64_t fn_month_page(const char *args, size_t len) {
    gk_buf month = GK_BUF_INIT, rows = GK_BUF_INIT, out = GK_BUF_INIT;
    int64_t today = floor_div(now_epoch(), 86400), first, grid_start, grid_end, day;
    int y, m, d, weeks, w, i, bad = 0, py, pm, ny, nm;
    char from[11], to[11], label[8], prev[8], next[8], today_s[11];
    row_cursor c;

    if (!ensure_schema()) return return_host_error("creating the calendar table");
    civil_from_days(today, &y, &m, &d);
    query_param(args, len, "month", &month);
    if (month.len > 0) {
        int yy, mm;
        if (month.len == 7 && month.data[4] == '-' && digits(month.data, 4, &yy) &&
            digits(month.data + 5, 2, &mm) && yy >= 1900 && yy <= 9999 && mm >= 1 && mm <= 12) {
            y = yy;
            m = mm;
        } else
            bad = 1;
    }
    first = days_from_civil(y, m, 1);
    grid_start = first - (weekday(first) - 1);
    weeks = (int)((first - grid_start + days_in_month(y, m) + 6) / 7);
    grid_end = grid_start + weeks * 7;
    fmt_date(from, grid_start);
    fmt_date(to, grid_end);
    if (!query_range(from, to, &rows)) {
        gk_buf_free(&month);
        gk_buf_free(&rows);
        return return_host_error("reading appointments");
    }

    py = m == 1 ? y - 1 : y;
    pm = m == 1 ? 12 : m - 1;
    ny = m == 12 ? y + 1 : y;
    nm = m == 12 ? 1 : m + 1;
    fmt_month(label, y, m);
    fmt_month(prev, py, pm);
    fmt_month(next, ny, nm);
    fmt_date(today_s, today);

    template_begin(&out, "month.html", bad ? 400 : 200);
    gk_json_key(&out, "month");
    gk_json_cstr(&out, label);
    gk_json_key(&out, "year");
    gk_json_int(&out, y);
    gk_json_key(&out, "month_num");
    gk_json_int(&out, m);
    gk_json_key(&out, "prev_month");
    if (py >= 1900) gk_json_cstr(&out, prev);
    else gk_json_null(&out);
    gk_json_key(&out, "next_month");
    if (ny <= 9999) gk_json_cstr(&out, next);
    else gk_json_null(&out);
    gk_json_key(&out, "today");
    gk_json_cstr(&out, today_s);
    gk_json_key(&out, "week_date");
    {
        /* the week view to link to: today's in the current month, else the 1st */
        char wd[11];
        int ty, tm, td;
        civil_from_days(today, &ty, &tm, &td);
        fmt_date(wd, ty == y && tm == m ? today : first);
        gk_json_cstr(&out, wd);
    }
    gk_json_key(&out, "error");
    if (bad) gk_json_cstr(&out, "err_bad_month");
    else gk_json_null(&out);
    write_notice(&out, args, len);

    cursor_begin(&c, &rows);
    gk_json_key(&out, "weeks");
    gk_json_array_begin(&out);
    for (w = 0, day = grid_start; w < weeks; w++) {
        int iy, iw;
        iso_week(day, &iy, &iw);
        gk_json_object_begin(&out);
        gk_json_key(&out, "iso_week");
        gk_json_int(&out, iw);
        gk_json_key(&out, "days");
        gk_json_array_begin(&out);
        for (i = 0; i < 7; i++, day++) {
            char date[11];
            int dy, dm, dd;
            civil_from_days(day, &dy, &dm, &dd);
            fmt_date(date, day);
            gk_json_object_begin(&out);
            write_day_head(&out, day, dm == m, today);
            write_day_items(&out, &c, date);
            gk_json_object_end(&out);
        }
        gk_json_array_end(&out);
        gk_json_object_end(&out);
    }
    gk_json_array_end(&out);
    gk_json_key(&out, "count");
    gk_json_int(&out, c.count);
    gk_json_key(&out, "truncated");
    gk_json_bool(&out, c.count >= MAX_VIEW_ROWS);
    gk_buf_free(&c.start);
    gk_buf_free(&month);
    gk_buf_free(&rows);
    return template_end(&out);
}

/* ------------------------------------------------------------------------ */
/* Route: GET /calendar/week?date=YYYY-MM-DD                                */
/* ------------------------------------------------------------------------ */

static uint64_t fn_week_page(const char *args, size_t len) {
    gk_buf date = GK_BUF_INIT, rows = GK_BUF_INIT, out = GK_BUF_INIT;
    int64_t today = floor_div(now_epoch(), 86400), target = today, monday, day;
    int bad = 0, i, iy, iw;
    char from[11], to[11], buf[11];
    datetime dt;
    row_cursor c;

    if (!ensure_schema()) return return_host_error("creating the calendar table");
    query_param(args, len, "date", &date);
    if (date.len > 0) {
        if (parse_date(date.data, date.len, &dt)) target = days_from_civil(dt.y, dt.mo, dt.d);
        else bad = 1;
    }
    monday = target - (weekday(target) - 1);
    fmt_date(from, monday);
    fmt_date(to, monday + 7);
    if (!query_range(from, to, &rows)) {
        gk_buf_free(&date);
        gk_buf_free(&rows);
        return return_host_error("reading appointments");
    }
    iso_week(monday, &iy, &iw);

    template_begin(&out, "week.html", bad ? 400 : 200);
    gk_json_key(&out, "iso_year");
    gk_json_int(&out, iy);
    gk_json_key(&out, "iso_week");
    gk_json_int(&out, iw);
    gk_json_key(&out, "date");
    fmt_date(buf, target);
    gk_json_cstr(&out, buf);
    gk_json_key(&out, "month");
    gk_json_string(&out, buf, 7);
    gk_json_key(&out, "week_start");
    gk_json_cstr(&out, from);
    gk_json_key(&out, "week_end");
    fmt_date(buf, monday + 6);
    gk_json_cstr(&out, buf);
    gk_json_key(&out, "prev_date");
    fmt_date(buf, monday - 7);
    if (monday - 7 >= days_from_civil(1900, 1, 1)) gk_json_cstr(&out, buf);
    else gk_json_null(&out);
    gk_json_key(&out, "next_date");
    fmt_date(buf, monday + 7);
    if (monday + 7 < days_from_civil(10000, 1, 1)) gk_json_cstr(&out, buf);
    else gk_json_null(&out);
    gk_json_key(&out, "today");
    fmt_date(buf, today);
    gk_json_cstr(&out, buf);
    gk_json_key(&out, "error");
    if (bad) gk_json_cstr(&out, "err_bad_date");
    else gk_json_null(&out);

    cursor_begin(&c, &rows);
    gk_json_key(&out, "days");
    gk_json_array_begin(&out);
    for (i = 0, day = monday; i < 7; i++, day++) {
        fmt_date(buf, day);
        gk_json_object_begin(&out);
        write_day_head(&out, day, 1, today);
        write_day_items(&out, &c, buf);
        gk_json_object_end(&out);
    }
    gk_json_array_end(&out);
    gk_json_key(&out, "count");
    gk_json_int(&out, c.count);
    gk_json_key(&out, "truncated");
    gk_json_bool(&out, c.count >= MAX_VIEW_ROWS);
    gk_buf_free(&c.start);
    gk_buf_free(&date);
    gk_buf_free(&rows);
    return template_end(&out);
}

/* ------------------------------------------------------------------------ */
/* Routes: the form (new, create, detail, update, delete)                   */
/* ------------------------------------------------------------------------ */

/* The stored appointment for the detail page: its row, plus labels. */
static void write_appointment(gk_buf *out, gk_slice row) {
    char label[10];
    gk_json_key(out, "appointment");
    gk_json_object_begin(out);
    copy_field(out, row, "id", "id");
    copy_field(out, row, "uid", "uid");
    copy_field(out, row, "title", "title");
    copy_field(out, row, "description", "description");
    copy_field(out, row, "location", "location");
    copy_field(out, row, "tzid", "tzid");
    copy_field(out, row, "start_local", "start_local");
    copy_field(out, row, "end_local", "end_local");
    copy_field(out, row, "start_utc", "start_utc");
    copy_field(out, row, "end_utc", "end_utc");
    copy_field(out, row, "attendee_email", "attendee_email");
    copy_field(out, row, "remind_minutes", "remind_minutes");
    copy_field(out, row, "reminded_at", "reminded_at");
    copy_field(out, row, "created_at", "created_at");
    copy_field(out, row, "updated_at", "updated_at");
    gk_json_key(out, "offset_label");
    fmt_offset_label(label, (int)row_int(row, "offset_minutes"));
    gk_json_cstr(out, label);
    gk_json_key(out, "end_offset_label");
    fmt_offset_label(label, (int)row_int(row, "end_offset_minutes"));
    gk_json_cstr(out, label);
    gk_json_object_end(out);
}

/* Form values from a stored row. */
static void write_row_values(gk_buf *out, gk_slice row) {
    gk_buf text = GK_BUF_INIT;
    char off[7], num[24];
    gk_json_key(out, "values");
    gk_json_object_begin(out);
    copy_field(out, row, "title", "title");
    copy_field(out, row, "description", "description");
    copy_field(out, row, "location", "location");
    copy_field(out, row, "tzid", "tzid");
    row_text(row, "start_local", &text);
    gk_json_key(out, "start");
    gk_json_string(out, buf_str(&text), text.len > 16 ? 16 : text.len);
    row_text(row, "end_local", &text);
    gk_json_key(out, "end");
    gk_json_string(out, buf_str(&text), text.len > 16 ? 16 : text.len);
    gk_json_key(out, "start_offset");
    fmt_offset(off, (int)row_int(row, "offset_minutes"));
    gk_json_cstr(out, off);
    gk_json_key(out, "end_offset");
    fmt_offset(off, (int)row_int(row, "end_offset_minutes"));
    gk_json_cstr(out, off);
    row_text(row, "attendee_email", &text);
    gk_json_key(out, "attendee_email");
    gk_json_string(out, buf_str(&text), text.len);
    gk_json_key(out, "remind_minutes");
    snprintf(num, sizeof num, "%lld", (long long)row_int(row, "remind_minutes"));
    gk_json_cstr(out, num);
    gk_json_object_end(out);
    gk_buf_free(&text);
}

/* GET /calendar/new[?date=YYYY-MM-DD]: an empty form (09:00-10:00 that day). */
static uint64_t fn_new_form(const char *args, size_t len) {
    gk_buf date = GK_BUF_INIT, out = GK_BUF_INIT;
    datetime dt;
    char start[17] = "", end[17] = "";
    query_param(args, len, "date", &date);
    if (parse_date(date.data, date.len, &dt)) {
        snprintf(start, sizeof start, "%.10sT09:00", date.data);
        snprintf(end, sizeof end, "%.10sT10:00", date.data);
    }
    template_begin(&out, "form.html", 200);
    gk_json_key(&out, "mode");
    gk_json_cstr(&out, "new");
    gk_json_key(&out, "values");
    gk_json_object_begin(&out);
    gk_json_key(&out, "title");
    gk_json_cstr(&out, "");
    gk_json_key(&out, "description");
    gk_json_cstr(&out, "");
    gk_json_key(&out, "location");
    gk_json_cstr(&out, "");
    gk_json_key(&out, "tzid");
    gk_json_cstr(&out, "");
    gk_json_key(&out, "start");
    gk_json_cstr(&out, start);
    gk_json_key(&out, "end");
    gk_json_cstr(&out, end);
    gk_json_key(&out, "start_offset");
    gk_json_cstr(&out, "");
    gk_json_key(&out, "end_offset");
    gk_json_cstr(&out, "");
    gk_json_key(&out, "attendee_email");
    gk_json_cstr(&out, "");
    gk_json_key(&out, "remind_minutes");
    gk_json_cstr(&out, "0");
    gk_json_object_end(&out);
    gk_json_key(&out, "errors");
    JSON_LIT(&out, "[]");
    gk_buf_free(&date);
    return template_end(&out);
}

/* POST /calendar/new */
static uint64_t fn_create_submit(const char *args, size_t len) {
    appt_input in;
    gk_buf uid = GK_BUF_INIT, out = GK_BUF_INIT;
    int64_t id = 0;
    uint64_t r;
    if (!ensure_schema()) return return_host_error("creating the calendar table");
    input_init(&in);
    read_input(&in, args, len);
    if (in.n_errors > 0) {
        template_begin(&out, "form.html", 422);
        gk_json_key(&out, "mode");
        gk_json_cstr(&out, "new");
        write_values(&out, &in);
        write_errors(&out, &in);
        input_free(&in);
        return template_end(&out);
    }
    if (!insert_appointment(&in, &uid, &id)) r = return_host_error("saving the appointment");
    else r = redirect_to_month(1, in.start_local, "saved");
    input_free(&in);
    gk_buf_free(&uid);
    return r;
}

/* GET /calendar/{id}: details and the edit form. */
static uint64_t fn_detail_page(const char *args, size_t len) {
    gk_buf row = GK_BUF_INIT, out = GK_BUF_INIT;
    int64_t id = arg_id(args, len);
    int found;
    gk_slice r;
    if (!ensure_schema()) return return_host_error("creating the calendar table");
    found = id ? load_appointment(id, &row) : 0;
    if (found < 0) return return_host_error("reading the appointment");
    if (found == 0) {
        gk_buf_free(&row);
        return not_found_page(id);
    }
    r.ptr = row.data;
    r.len = row.len;
    template_begin(&out, "form.html", 200);
    gk_json_key(&out, "mode");
    gk_json_cstr(&out, "edit");
    write_appointment(&out, r);
    write_row_values(&out, r);
    gk_json_key(&out, "errors");
    JSON_LIT(&out, "[]");
    gk_buf_free(&row);
    return template_end(&out);
}

/* POST /calendar/{id}: update. A reminder is sent again only when what it
 * depends on changed (start, lead time or address). */
static uint64_t fn_update_submit(const char *args, size_t len) {
    gk_buf row = GK_BUF_INIT, out = GK_BUF_INIT, stmt = GK_BUF_INIT;
    int64_t id = arg_id(args, len), affected = 0;
    int found;
    char now[21];
    appt_input in;
    gk_slice r;
    uint64_t res;
    if (!ensure_schema()) return return_host_error("creating the calendar table");
    found = id ? load_appointment(id, &row) : 0;
    if (found < 0) return return_host_error("reading the appointment");
    if (found == 0) {
        gk_buf_free(&row);
        return not_found_page(id);
    }
    input_init(&in);
    read_input(&in, args, len);
    if (in.n_errors > 0) {
        r.ptr = row.data;
        r.len = row.len;
        template_begin(&out, "form.html", 422);
        gk_json_key(&out, "mode");
        gk_json_cstr(&out, "edit");
        write_appointment(&out, r);
        write_values(&out, &in);
        write_errors(&out, &in);
        input_free(&in);
        gk_buf_free(&row);
        return template_end(&out);
    }
    fmt_utc(now, now_epoch());
    /* SET expressions see the old row, so the CASE compares old with new. */
    gk_sql_begin(&stmt,
              "UPDATE calendar_appointments SET title = ?, description = ?, location = ?, "
              "start_utc = ?, end_utc = ?, tzid = ?, start_local = ?, end_local = ?, "
              "offset_minutes = ?, end_offset_minutes = ?, attendee_email = ?, "
              "remind_minutes = ?, remind_at = ?, reminded_at = CASE WHEN start_utc = ? AND "
              "remind_minutes = ? AND COALESCE(attendee_email, '') = ? THEN reminded_at "
              "ELSE NULL END, updated_at = ? WHERE id = ?");
    append_columns(&stmt, &in);
    gk_json_cstr(&stmt, in.start_utc);
    gk_json_int(&stmt, in.remind_minutes);
    gk_json_string(&stmt, buf_str(&in.email), in.email.len);
    gk_json_cstr(&stmt, now);
    gk_json_int(&stmt, id);
    gk_sql_end(&stmt);
    if (!gk_db_exec(&stmt, &affected)) res = return_host_error("saving the appointment");
    else if (affected == 0) res = not_found_page(id); /* deleted meanwhile */
    else res = redirect_to_month(1, in.start_local, "saved");
    input_free(&in);
    gk_buf_free(&row);
    gk_buf_free(&stmt);
    return res;
}

/* POST /calendar/{id}/delete */
static uint64_t fn_delete_submit(const char *args, size_t len) {
    gk_buf row = GK_BUF_INIT, stmt = GK_BUF_INIT, start = GK_BUF_INIT;
    int64_t id = arg_id(args, len), affected = 0;
    int found;
    gk_slice r;
    uint64_t res;
    if (!ensure_schema()) return return_host_error("creating the calendar table");
    found = id ? load_appointment(id, &row) : 0;
    if (found < 0) return return_host_error("reading the appointment");
    if (found == 0) {
        gk_buf_free(&row);
        return not_found_page(id);
    }
    r.ptr = row.data;
    r.len = row.len;
    row_text(r, "start_local", &start);
    gk_sql_begin(&stmt, "DELETE FROM calendar_appointments WHERE id = ?");
    gk_json_int(&stmt, id);
    gk_sql_end(&stmt);
    if (!gk_db_exec(&stmt, &affected)) res = return_host_error("deleting the appointment");
    else if (affected == 0 || start.len < 7) res = not_found_page(id);
    else res = redirect_to_month(2, start.data, "deleted");
    gk_buf_free(&row);
    gk_buf_free(&stmt);
    gk_buf_free(&start);
    return res;
}

/* ------------------------------------------------------------------------ */
/* iCalendar (RFC 5545)                                                     */
/* ------------------------------------------------------------------------ */

/* Appends one content line, folded so that no physical line exceeds 75
 * octets (a fold is CRLF + space, and never splits a UTF-8 sequence). */
static void ics_line(gk_buf *out, const char *s, size_t n) {
    size_t limit = 75, pos = 0;
    while (n - pos > limit) {
        size_t cut = pos + limit;
        while (cut > pos && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
        gk_buf_append(out, s + pos, cut - pos);
        gk_buf_append_cstr(out, "\r\n ");
        pos = cut;
        limit = 74; /* the leading space counts */
    }
    gk_buf_append(out, s + pos, n - pos);
    gk_buf_append_cstr(out, "\r\n");
}

/* NAME:value with value escaped as TEXT (\\ \; \, and \n for newlines;
 * other control characters but tab are dropped). */
static void ics_text(gk_buf *out, const char *name, const gk_buf *value) {
    gk_buf line = GK_BUF_INIT;
    size_t i;
    gk_buf_append_cstr(&line, name);
    gk_buf_append_char(&line, ':');
    for (i = 0; i < value->len; i++) {
        unsigned char c = (unsigned char)value->data[i];
        if (c == '\\' || c == ';' || c == ',') {
            gk_buf_append_char(&line, '\\');
            gk_buf_append_char(&line, (char)c);
        } else if (c == '\r') {
            gk_buf_append_cstr(&line, "\\n");
            if (i + 1 < value->len && value->data[i + 1] == '\n') i++;
        } else if (c == '\n')
            gk_buf_append_cstr(&line, "\\n");
        else if (c >= 0x20 || c == '\t')
            gk_buf_append_char(&line, (char)c);
    }
    ics_line(out, buf_str(&line), line.len);
    gk_buf_free(&line);
}

/* NAME:YYYYMMDDTHHMMSSZ from a stored UTC text (nothing if it is not one). */
static void ics_utc(gk_buf *out, const char *name, const gk_buf *iso) {
    int64_t t;
    char v[21], line[64];
    if (!parse_utc(buf_str(iso), iso->len, &t)) return;
    fmt_utc(v, t);
    snprintf(line, sizeof line, "%s:%.4s%.2s%.2sT%.2s%.2s%.2sZ", name, v, v + 5, v + 8, v + 11,
             v + 14, v + 17);
    ics_line(out, line, strlen(line));
}

#define ICS_LIT(out, lit) ics_line((out), (lit), sizeof(lit) - 1)

static void ics_begin(gk_buf *out) {
    ICS_LIT(out, "BEGIN:VCALENDAR");
    ICS_LIT(out, "VERSION:2.0");
    ICS_LIT(out, "PRODID:-//goatkit_asgi//calendar 1.0.0//EN");
    ICS_LIT(out, "CALSCALE:GREGORIAN");
    ICS_LIT(out, "METHOD:PUBLISH");
}

/* One appointment row as a VEVENT; stamp is DTSTAMP (the feed's time). */
static void ics_event(gk_buf *out, gk_slice row, const gk_buf *stamp) {
    gk_buf v = GK_BUF_INIT;
    ICS_LIT(out, "BEGIN:VEVENT");
    row_text(row, "uid", &v);
    ics_text(out, "UID", &v);
    ics_utc(out, "DTSTAMP", stamp);
    row_text(row, "start_utc", &v);
    ics_utc(out, "DTSTART", &v);
    row_text(row, "end_utc", &v);
    ics_utc(out, "DTEND", &v);
    row_text(row, "title", &v);
    ics_text(out, "SUMMARY", &v);
    row_text(row, "description", &v);
    if (v.len) ics_text(out, "DESCRIPTION", &v);
    row_text(row, "location", &v);
    if (v.len) ics_text(out, "LOCATION", &v);
    row_text(row, "created_at", &v);
    ics_utc(out, "CREATED", &v);
    row_text(row, "updated_at", &v);
    ics_utc(out, "LAST-MODIFIED", &v);
    row_text(row, "tzid", &v);
    ics_text(out, "X-GOATKIT-TZID", &v);
    ICS_LIT(out, "END:VEVENT");
    gk_buf_free(&v);
}

/* {"status": 200, "headers": {...}, "body": ics} */
static uint64_t ics_response(const gk_buf *ics, const char *disposition) {
    gk_buf out = GK_BUF_INIT;
    gk_json_object_begin(&out);
    gk_json_key(&out, "status");
    gk_json_int(&out, 200);
    gk_json_key(&out, "headers");
    gk_json_object_begin(&out);
    gk_json_key(&out, "content-type");
    gk_json_cstr(&out, "text/calendar; charset=utf-8");
    gk_json_key(&out, "content-disposition");
    gk_json_cstr(&out, disposition);
    gk_json_object_end(&out);
    gk_json_key(&out, "body");
    gk_json_string(&out, buf_str(ics), ics->len);
    gk_json_object_end(&out);
    return gk_return_buf(&out);
}

/* GET /calendar/feed.ics: every appointment, read in pages of FEED_PAGE. */
static uint64_t fn_feed_ics(void) {
    gk_buf ics = GK_BUF_INIT, stmt = GK_BUF_INIT, rows = GK_BUF_INIT, stamp = GK_BUF_INIT;
    int64_t last = 0;
    int n, type, stopped = 0;
    char now[21];
    gk_json_iter it;
    gk_slice row;
    uint64_t r;
    if (!ensure_schema()) return return_host_error("creating the calendar table");
    fmt_utc(now, now_epoch());
    gk_buf_append_cstr(&stamp, now);
    ics_begin(&ics);
    ICS_LIT(&ics, "X-WR-CALNAME:Calendar");
    do {
        gk_sql_begin(&stmt, "SELECT " APPT_COLUMNS
                         " FROM calendar_appointments WHERE id > ? ORDER BY id LIMIT ?");
        gk_json_int(&stmt, last);
        gk_json_int(&stmt, FEED_PAGE);
        gk_sql_end(&stmt);
        if (!gk_db_query(&stmt, &rows)) {
            gk_buf_free(&ics);
            gk_buf_free(&stmt);
            gk_buf_free(&rows);
            gk_buf_free(&stamp);
            return return_host_error("reading appointments");
        }
        n = 0;
        if (gk_json_iter_begin(&it, rows.data, rows.len, '[')) {
            while (gk_json_iter_next(&it, NULL, &row, &type)) {
                if (type != GK_JSON_OBJECT) continue;
                n++;
                last = row_int(row, "id");
                ics_event(&ics, row, &stamp);
                if (ics.len > FEED_MAX_BYTES) {
                    stopped = 1;
                    break;
                }
            }
        }
    } while (n == FEED_PAGE && !stopped);
    if (stopped) gk_log_warn("feed.ics cut short: it reached 3 MB");
    ICS_LIT(&ics, "END:VCALENDAR");
    r = ics_response(&ics, "inline; filename=\"calendar.ics\"");
    gk_buf_free(&ics);
    gk_buf_free(&stmt);
    gk_buf_free(&rows);
    gk_buf_free(&stamp);
    return r;
}

/* GET /calendar/{id}/event.ics */
static uint64_t fn_event_ics(const char *args, size_t len) {
    gk_buf row = GK_BUF_INIT, ics = GK_BUF_INIT, stamp = GK_BUF_INIT;
    int64_t id = arg_id(args, len);
    int found;
    char now[21], disposition[80];
    gk_slice r;
    uint64_t res;
    if (!ensure_schema()) return return_host_error("creating the calendar table");
    found = id ? load_appointment(id, &row) : 0;
    if (found < 0) return return_host_error("reading the appointment");
    if (found == 0) {
        gk_buf_free(&row);
        return not_found_page(id);
    }
    r.ptr = row.data;
    r.len = row.len;
    fmt_utc(now, now_epoch());
    gk_buf_append_cstr(&stamp, now);
    ics_begin(&ics);
    ics_event(&ics, r, &stamp);
    ICS_LIT(&ics, "END:VCALENDAR");
    snprintf(disposition, sizeof disposition, "attachment; filename=\"appointment-%lld.ics\"",
             (long long)id);
    res = ics_response(&ics, disposition);
    gk_buf_free(&row);
    gk_buf_free(&ics);
    gk_buf_free(&stamp);
    return res;
}

/* ------------------------------------------------------------------------ */
/* Template functions                                                       */
/* ------------------------------------------------------------------------ */

/* upcoming(limit): appointments that have not ended, soonest first. */
static uint64_t fn_upcoming(const char *args, size_t len) {
    gk_buf stmt = GK_BUF_INIT, rows = GK_BUF_INIT, out = GK_BUF_INIT;
    int64_t limit = 5;
    char now[21], url[48];
    gk_json_iter it;
    gk_slice row, v;
    int type;
    type = gk_json_find(args, len, "limit", &v);
    if (type > GK_JSON_NULL &&
        (!gk_json_get_int(args, len, "limit", &limit) || limit < 1 || limit > 50))
        return gk_return_error("bad_input", "upcoming: limit must be a whole number from 1 to 50");
    if (!ensure_schema()) return return_host_error("creating the calendar table");
    fmt_utc(now, now_epoch());
    gk_sql_begin(&stmt, "SELECT id, title, start_local, end_local, tzid, start_utc, end_utc, "
                     "offset_minutes, location FROM calendar_appointments "
                     "WHERE end_utc >= ? ORDER BY start_utc, id LIMIT ?");
    gk_json_cstr(&stmt, now);
    gk_json_int(&stmt, limit);
    gk_sql_end(&stmt);
    if (!gk_db_query(&stmt, &rows)) {
        gk_buf_free(&stmt);
        gk_buf_free(&rows);
        return return_host_error("reading appointments");
    }
    gk_json_object_begin(&out);
    gk_json_key(&out, "items");
    gk_json_array_begin(&out);
    if (gk_json_iter_begin(&it, rows.data, rows.len, '[')) {
        while (gk_json_iter_next(&it, NULL, &row, &type)) {
            char label[10];
            if (type != GK_JSON_OBJECT) continue;
            gk_json_object_begin(&out);
            copy_field(&out, row, "id", "id");
            copy_field(&out, row, "title", "title");
            copy_field(&out, row, "start_local", "start_local");
            copy_field(&out, row, "end_local", "end_local");
            copy_field(&out, row, "tzid", "tzid");
            copy_field(&out, row, "start_utc", "start_utc");
            copy_field(&out, row, "end_utc", "end_utc");
            copy_field(&out, row, "location", "location");
            gk_json_key(&out, "offset_label");
            fmt_offset_label(label, (int)row_int(row, "offset_minutes"));
            gk_json_cstr(&out, label);
            gk_json_key(&out, "url");
            snprintf(url, sizeof url, "/calendar/%lld", (long long)row_int(row, "id"));
            gk_json_cstr(&out, url);
            gk_json_object_end(&out);
        }
    }
    gk_json_array_end(&out);
    gk_json_object_end(&out);
    gk_buf_free(&stmt);
    gk_buf_free(&rows);
    return gk_return_buf(&out);
}

/* create_appointment({...}): the JSON API; {"id", "uid"}. */
static uint64_t fn_create_appointment(const char *args, size_t len) {
    appt_input in;
    gk_buf uid = GK_BUF_INIT, msg = GK_BUF_INIT, out = GK_BUF_INIT;
    int64_t id = 0;
    int i;
    uint64_t r;
    if (gk_json_find(args, len, "title", NULL) == GK_JSON_INVALID)
        return gk_return_error("bad_input", "create_appointment takes one JSON object");
    input_init(&in);
    read_input(&in, args, len);
    if (in.n_errors > 0) {
        for (i = 0; i < in.n_errors; i++) {
            if (i) gk_buf_append_cstr(&msg, " ");
            gk_buf_append_cstr(&msg, in.errors[i].field);
            gk_buf_append_cstr(&msg, ": ");
            gk_buf_append_cstr(&msg, in.errors[i].text);
        }
        r = gk_return_error("bad_input", buf_str(&msg));
        input_free(&in);
        gk_buf_free(&msg);
        return r;
    }
    if (!ensure_schema()) r = return_host_error("creating the calendar table");
    else if (!insert_appointment(&in, &uid, &id)) r = return_host_error("saving the appointment");
    else {
        gk_json_object_begin(&out);
        gk_json_key(&out, "id");
        gk_json_int(&out, id);
        gk_json_key(&out, "uid");
        gk_json_string(&out, buf_str(&uid), uid.len);
        gk_json_key(&out, "start_utc");
        gk_json_cstr(&out, in.start_utc);
        gk_json_key(&out, "end_utc");
        gk_json_cstr(&out, in.end_utc);
        gk_json_object_end(&out);
        r = gk_return_buf(&out);
    }
    input_free(&in);
    gk_buf_free(&uid);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Job: send_reminders                                                      */
/* ------------------------------------------------------------------------ */

/* Mails one reminder; returns 1 when send_email succeeded. */
static int send_reminder(gk_slice row) {
    gk_buf title = GK_BUF_INIT, to = GK_BUF_INIT, tz = GK_BUF_INIT, start = GK_BUF_INIT,
           end = GK_BUF_INIT, location = GK_BUF_INIT, description = GK_BUF_INIT,
           start_utc = GK_BUF_INIT, subject = GK_BUF_INIT, body = GK_BUF_INIT,
           args = GK_BUF_INIT;
    char label[10];
    int ok;
    row_text(row, "title", &title);
    row_text(row, "attendee_email", &to);
    row_text(row, "tzid", &tz);
    row_text(row, "start_local", &start);
    row_text(row, "end_local", &end);
    row_text(row, "location", &location);
    row_text(row, "description", &description);
    row_text(row, "start_utc", &start_utc);
    buf_one_line(&title);
    fmt_offset_label(label, (int)row_int(row, "offset_minutes"));

    /* Reminder: TITLE at YYYY-MM-DD HH:MM (TZ) */
    gk_buf_append_cstr(&subject, "Reminder: ");
    gk_buf_append(&subject, title.data, title.len);
    gk_buf_append_cstr(&subject, " at ");
    gk_buf_append(&subject, start.data, start.len >= 16 ? 10 : start.len);
    if (start.len >= 16) {
        gk_buf_append_char(&subject, ' ');
        gk_buf_append(&subject, start.data + 11, 5);
    }
    gk_buf_append_cstr(&subject, " (");
    gk_buf_append(&subject, tz.data, tz.len);
    gk_buf_append_char(&subject, ')');

    gk_buf_append_cstr(&body, "Reminder: ");
    gk_buf_append(&body, title.data, title.len);
    gk_buf_append_cstr(&body, "\n\nStarts: ");
    gk_buf_append(&body, start.data, start.len >= 16 ? 10 : start.len);
    if (start.len >= 16) {
        gk_buf_append_char(&body, ' ');
        gk_buf_append(&body, start.data + 11, 5);
    }
    gk_buf_append_cstr(&body, " ");
    gk_buf_append_cstr(&body, label);
    gk_buf_append_cstr(&body, " (");
    gk_buf_append(&body, tz.data, tz.len);
    gk_buf_append_cstr(&body, ")\nEnds: ");
    gk_buf_append(&body, end.data, end.len >= 16 ? 10 : end.len);
    if (end.len >= 16) {
        gk_buf_append_char(&body, ' ');
        gk_buf_append(&body, end.data + 11, 5);
    }
    gk_buf_append_cstr(&body, "\nUTC: ");
    gk_buf_append(&body, start_utc.data, start_utc.len);
    if (location.len) {
        gk_buf_append_cstr(&body, "\nLocation: ");
        gk_buf_append(&body, location.data, location.len);
    }
    if (description.len) {
        gk_buf_append_cstr(&body, "\n\n");
        gk_buf_append(&body, description.data, description.len);
    }
    gk_buf_append_char(&body, '\n');

    gk_json_object_begin(&args);
    gk_json_key(&args, "to");
    gk_json_string(&args, buf_str(&to), to.len);
    gk_json_key(&args, "subject");
    gk_json_string(&args, buf_str(&subject), subject.len);
    gk_json_key(&args, "body");
    gk_json_string(&args, buf_str(&body), body.len);
    gk_json_key(&args, "html");
    gk_json_bool(&args, 0);
    gk_json_object_end(&args);
    ok = !args.oom && gk_host_call_json_n("send_email", args.data, args.len, NULL, NULL);

    gk_buf_free(&title);
    gk_buf_free(&to);
    gk_buf_free(&tz);
    gk_buf_free(&start);
    gk_buf_free(&end);
    gk_buf_free(&location);
    gk_buf_free(&description);
    gk_buf_free(&start_utc);
    gk_buf_free(&subject);
    gk_buf_free(&body);
    gk_buf_free(&args);
    return ok;
}

/* send_reminders({"now"?}): mails every reminder that is due at `now` (the
 * clock by default) and not sent yet, then marks it sent. A reminder is due
 * from start - remind_minutes until the start. Returns {"sent", "failed",
 * "errors": [{"id", "code", "message"}]}; when every send failed, the call
 * fails with the last host error instead (so a job run shows it). */
static uint64_t fn_send_reminders(const char *args, size_t len) {
    gk_buf now_arg = GK_BUF_INIT, stmt = GK_BUF_INIT, rows = GK_BUF_INIT, out = GK_BUF_INIT,
           errors = GK_BUF_INIT, code = GK_BUF_INIT, message = GK_BUF_INIT, start = GK_BUF_INIT;
    int64_t now = now_epoch(), sent = 0, failed = 0;
    char now_s[21];
    gk_json_iter it;
    gk_slice row;
    int type;
    uint64_t r;

    if (args && get_text(args, len, "now", &now_arg) && now_arg.len > 0) {
        if (!parse_utc(now_arg.data, now_arg.len, &now)) {
            gk_buf_free(&now_arg);
            return gk_return_error("bad_input",
                                   "send_reminders: now must be an ISO-8601 time with an offset "
                                   "(2026-01-05T09:00:00Z)");
        }
    }
    gk_buf_free(&now_arg);
    if (!ensure_schema()) return return_host_error("creating the calendar table");
    fmt_utc(now_s, now);
    gk_sql_begin(&stmt, "SELECT " APPT_COLUMNS " FROM calendar_appointments "
                     "WHERE reminded_at IS NULL AND remind_at <= ? AND start_utc > ? "
                     "AND attendee_email IS NOT NULL AND attendee_email <> '' "
                     "ORDER BY remind_at, id LIMIT ?");
    gk_json_cstr(&stmt, now_s);
    gk_json_cstr(&stmt, now_s);
    gk_json_int(&stmt, REMIND_BATCH);
    gk_sql_end(&stmt);
    if (!gk_db_query(&stmt, &rows)) {
        gk_buf_free(&stmt);
        gk_buf_free(&rows);
        return return_host_error("reading due reminders");
    }
    gk_json_array_begin(&errors);
    if (gk_json_iter_begin(&it, rows.data, rows.len, '[')) {
        while (gk_json_iter_next(&it, NULL, &row, &type)) {
            int64_t t, id = row_int(row, "id");
            if (type != GK_JSON_OBJECT) continue;
            row_text(row, "start_utc", &start);
            if (!parse_utc(buf_str(&start), start.len, &t)) continue;
            if (t - row_int(row, "remind_minutes") * 60 > now) continue; /* not yet */
            if (!send_reminder(row)) {
                gk_last_error_parts(&code, &message);
                gk_logf(GK_LOG_WARN, "reminder for appointment %lld not sent: %s",
                        (long long)id, buf_str(&code));
                failed++;
                gk_json_object_begin(&errors);
                gk_json_key(&errors, "id");
                gk_json_int(&errors, id);
                gk_json_key(&errors, "code");
                gk_json_string(&errors, buf_str(&code), code.len);
                gk_json_key(&errors, "message");
                gk_json_string(&errors, buf_str(&message), message.len);
                gk_json_object_end(&errors);
                continue;
            }
            sent++;
            /* Marked only after the mail went out; a failure here means the
             * reminder may be sent again, which beats never sending it. */
            gk_sql_begin(&stmt, "UPDATE calendar_appointments SET reminded_at = ? "
                             "WHERE id = ? AND reminded_at IS NULL");
            gk_json_cstr(&stmt, now_s);
            gk_json_int(&stmt, id);
            gk_sql_end(&stmt);
            if (!gk_db_exec(&stmt, NULL)) {
                gk_last_error_parts(&code, &message);
                gk_logf(GK_LOG_ERROR, "reminder for appointment %lld sent but not marked: %s",
                        (long long)id, buf_str(&code));
            }
        }
    }
    gk_json_array_end(&errors);
    if (failed > 0 && sent == 0) {
        gk_buf text = GK_BUF_INIT;
        gk_buf_append_cstr(&text, "no reminder could be sent: ");
        gk_buf_append(&text, message.data, message.len);
        r = gk_return_error(buf_str(&code), buf_str(&text));
        gk_buf_free(&text);
    } else {
        gk_json_object_begin(&out);
        gk_json_key(&out, "sent");
        gk_json_int(&out, sent);
        gk_json_key(&out, "failed");
        gk_json_int(&out, failed);
        gk_json_key(&out, "errors");
        gk_json_raw(&out, errors.data, errors.len);
        gk_json_object_end(&out);
        r = gk_return_buf(&out);
    }
    if (sent) gk_logf(GK_LOG_INFO, "%lld reminder(s) sent", (long long)sent);
    gk_buf_free(&stmt);
    gk_buf_free(&rows);
    gk_buf_free(&errors);
    gk_buf_free(&code);
    gk_buf_free(&message);
    gk_buf_free(&start);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                 */
/* ------------------------------------------------------------------------ */

uint64_t gk_call(const char *fn, size_t fn_len, const char *args, size_t args_len) {
    /* No args at all (a job run) reads like an empty object. */
    if (!args || args_len == 0) {
        args = "{}";
        args_len = 2;
    }
    if (gk_fn_is(fn, fn_len, "month_page")) return fn_month_page(args, args_len);
    if (gk_fn_is(fn, fn_len, "week_page")) return fn_week_page(args, args_len);
    if (gk_fn_is(fn, fn_len, "new_form")) return fn_new_form(args, args_len);
    if (gk_fn_is(fn, fn_len, "create_submit")) return fn_create_submit(args, args_len);
    if (gk_fn_is(fn, fn_len, "detail_page")) return fn_detail_page(args, args_len);
    if (gk_fn_is(fn, fn_len, "update_submit")) return fn_update_submit(args, args_len);
    if (gk_fn_is(fn, fn_len, "delete_submit")) return fn_delete_submit(args, args_len);
    if (gk_fn_is(fn, fn_len, "feed_ics")) return fn_feed_ics();
    if (gk_fn_is(fn, fn_len, "event_ics")) return fn_event_ics(args, args_len);
    if (gk_fn_is(fn, fn_len, "upcoming")) return fn_upcoming(args, args_len);
    if (gk_fn_is(fn, fn_len, "create_appointment")) return fn_create_appointment(args, args_len);
    if (gk_fn_is(fn, fn_len, "send_reminders")) return fn_send_reminders(args, args_len);
    return gk_return_error("unknown_function", "calendar has no such function");
}
