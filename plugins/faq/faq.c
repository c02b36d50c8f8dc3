/*
 * faq: a FAQ / knowledge base for goatkit_asgi.
 *
 * Articles (plain text, in categories) live in the plugin's own tables,
 * created on first use in every instance with CREATE TABLE IF NOT EXISTS:
 *
 *   faq_categories (id, name UNIQUE, position)
 *   faq_articles   (id, category_id, title, body, published 0/1,
 *                   created_at, updated_at: ISO-8601 text in UTC)
 *
 * Search, by database:
 *   SQLite      an FTS5 table faq_fts(title, body), rowid = article id, kept
 *               in sync on every save and delete; MATCH + bm25 + snippet().
 *               Where FTS5 is missing (or config search: like) LIKE is used.
 *   PostgreSQL  to_tsvector('simple', title || ' ' || body) @@ to_tsquery,
 *               a GIN index on that expression, ts_rank and ts_headline.
 * User text never reaches MATCH / to_tsquery / LIKE as syntax: it is cut into
 * words of letters, digits, '_', '%' and '-', and each word is quoted as a
 * string ("word"* for FTS5, 'word':* for PostgreSQL, %word% with '!' as the
 * LIKE escape for % and _).
 *
 * Ids: db_exec answers only {"affected": n} and db_query cannot write, so a
 * new row's id cannot come back from an INSERT. The plugin therefore picks
 * the id itself (MAX(id) + 1) and inserts with ON CONFLICT DO NOTHING; a
 * concurrent insert that took the id makes it try the next one.
 *
 * Pages are Jinja templates (templates/); this file only returns their
 * context. Build with ./build.sh.
 */
#include "goatkit.h"

/* Static: the host reads the registration once and never frees it. */
static const char REGISTRATION[] =
    "{"
    "\"name\":\"faq\","
    "\"version\":\"1.0.0\","
    "\"description\":\"FAQ and knowledge base: categories of plain-text articles, a public "
    "portal with full-text search, an editor, and article suggestions for tickets\","
    "\"author\":\"goatkit_asgi contributors\","
    "\"license\":\"Apache-2.0\","
    "\"permissions\":[\"faq.edit\"],"
    "\"functions\":["
    "{\"name\":\"faq_suggest\",\"args\":[\"text\"],\"returns\":\"object\","
    "\"description\":\"Up to 3 published articles relevant to a text (e.g. a ticket): "
    "{items: [{id, title, url, snippet}]}\"},"
    "{\"name\":\"search\",\"args\":[\"q\"],\"returns\":\"object\","
    "\"description\":\"Published articles matching every word of q: {q, mode, items}\"},"
    "{\"name\":\"save_article\",\"args\":[\"id\",\"title\",\"body\",\"category\",\"published\"],"
    "\"returns\":\"object\",\"description\":\"Creates (no id) or updates an article: {id, created}\"},"
    "{\"name\":\"save_category\",\"args\":[\"name\",\"position\"],\"returns\":\"object\","
    "\"description\":\"Creates a category, or finds it by name: {id, created}\"},"
    "{\"name\":\"page_portal\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"GET /faq\"},"
    "{\"name\":\"page_search\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"GET /faq/search\"},"
    "{\"name\":\"page_article\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"GET /faq/article/{id}\"},"
    "{\"name\":\"page_manage\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"GET /faq/manage\"},"
    "{\"name\":\"page_new\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"GET /faq/manage/new\"},"
    "{\"name\":\"page_create\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"POST /faq/manage/new\"},"
    "{\"name\":\"page_edit\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"GET /faq/manage/{id}\"},"
    "{\"name\":\"page_update\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"POST /faq/manage/{id}\"},"
    "{\"name\":\"page_publish\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"POST /faq/manage/{id}/publish\"},"
    "{\"name\":\"page_delete\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"POST /faq/manage/{id}/delete\"},"
    "{\"name\":\"page_category\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"POST /faq/manage/categories\"}"
    "],"
    "\"routes\":["
    "{\"method\":\"GET\",\"path\":\"/faq\",\"handler\":\"page_portal\","
    "\"description\":\"The FAQ portal: search box and published articles by category\"},"
    "{\"method\":\"GET\",\"path\":\"/faq/search\",\"handler\":\"page_search\","
    "\"description\":\"Search results with snippets (published articles only)\"},"
    "{\"method\":\"GET\",\"path\":\"/faq/article/{id:int}\",\"handler\":\"page_article\","
    "\"description\":\"One published article\"},"
    "{\"method\":\"GET\",\"path\":\"/faq/manage\",\"handler\":\"page_manage\","
    "\"permission\":\"faq.edit\",\"description\":\"All articles and categories\"},"
    "{\"method\":\"GET\",\"path\":\"/faq/manage/new\",\"handler\":\"page_new\","
    "\"permission\":\"faq.edit\",\"description\":\"Form for a new article\"},"
    "{\"method\":\"POST\",\"path\":\"/faq/manage/new\",\"handler\":\"page_create\","
    "\"permission\":\"faq.edit\",\"description\":\"Creates an article\"},"
    "{\"method\":\"GET\",\"path\":\"/faq/manage/{id:int}\",\"handler\":\"page_edit\","
    "\"permission\":\"faq.edit\",\"description\":\"Form to edit an article\"},"
    "{\"method\":\"POST\",\"path\":\"/faq/manage/{id:int}\",\"handler\":\"page_update\","
    "\"permission\":\"faq.edit\",\"description\":\"Saves an article\"},"
    "{\"method\":\"POST\",\"path\":\"/faq/manage/{id:int}/publish\",\"handler\":\"page_publish\","
    "\"permission\":\"faq.edit\",\"description\":\"Publishes or unpublishes an article\"},"
    "{\"method\":\"POST\",\"path\":\"/faq/manage/{id:int}/delete\",\"handler\":\"page_delete\","
    "\"permission\":\"faq.edit\",\"description\":\"Deletes an article\"},"
    "{\"method\":\"POST\",\"path\":\"/faq/manage/categories\",\"handler\":\"page_category\","
    "\"permission\":\"faq.edit\",\"description\":\"Creates a category\"}"
    "],"
    "\"menu_items\":["
    "{\"id\":\"faq\",\"label\":\"FAQ\",\"path\":\"/faq\",\"icon\":\"help-circle\","
    "\"location\":\"main\",\"order\":130},"
    "{\"id\":\"faq-manage\",\"label\":\"Manage FAQ\",\"path\":\"/faq/manage\",\"icon\":\"edit\","
    "\"location\":\"main\",\"order\":131,\"permission\":\"faq.edit\"}"
    "]"
    "}";

uint64_t gk_register(void) { return gk_return_static(REGISTRATION); }

/* ------------------------------------------------------------------------ */
/* Limits                                                                   */
/* ------------------------------------------------------------------------ */

#define TITLE_MAX 200      /* characters */
#define BODY_MAX 20000     /* characters */
#define CATEGORY_MAX 100   /* characters */
#define QUERY_MAX 200      /* characters of a search */
#define SEARCH_LIMIT 20    /* results of a search */
#define SUGGEST_LIMIT 3    /* results of faq_suggest */
#define SEARCH_WORDS 8     /* words of a search that are used */
#define SUGGEST_WORDS 12   /* significant words of a suggestion text that are used */
#define SUGGEST_SCAN 8000  /* bytes of a suggestion text that are looked at */
#define WORD_MAX 64        /* bytes of one word */
#define INSERT_TRIES 8     /* attempts to insert with a fresh id */

/* Snippet highlight markers. Saved text never holds control characters
 * (clean_text drops them), so these cannot be forged by an author. */
#define MARK_ON '\x02'
#define MARK_OFF '\x03'

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

#define LIT(b, s) gk_buf_append((b), (s), sizeof(s) - 1)

/* A buffer's text, "" while it has none. */
static const char *str(const gk_buf *b) { return b->data ? b->data : ""; }

static void append_int(gk_buf *b, int64_t v) {
    char tmp[24];
    size_t i = sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[--i] = '-';
    gk_buf_append(b, tmp + i, sizeof tmp - i);
}

/* Characters (not bytes) of UTF-8 text. */
static size_t utf8_chars(const char *s, size_t n) {
    size_t i, count = 0;
    for (i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) count++;
    return count;
}

/* The longest prefix of s (n bytes) of at most max bytes that does not cut
 * a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n, size_t max) {
    if (n <= max) return n;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
    return max;
}

static char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Copies text into out, cleaned for storage: control characters are dropped
 * (line breaks and tabs kept in multi-line text, turned into spaces in a
 * single line), \r\n and \r become \n, and whitespace at both ends goes. */
static void clean_text(const char *s, size_t n, int multiline, gk_buf *out) {
    size_t i, start, end;
    gk_buf_reset(out);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r') {
            if (i + 1 < n && s[i + 1] == '\n') continue;
            c = '\n';
        }
        if (c == '\n' || c == '\t') {
            gk_buf_append_char(out, multiline ? (char)c : ' ');
            continue;
        }
        if (c < 0x20 || c == 0x7F) continue;
        gk_buf_append_char(out, (char)c);
    }
    if (!out->data) return;
    start = 0;
    end = out->len;
    while (start < end && is_space(out->data[start])) start++;
    while (end > start && is_space(out->data[end - 1])) end--;
    memmove(out->data, out->data + start, end - start);
    out->len = end - start;
    out->data[out->len] = '\0';
}

/* ------------------------------------------------------------------------ */
/* Reading arguments                                                        */
/* ------------------------------------------------------------------------ */

/* String field `key` (a number counts too, as its text). Returns 1 if set. */
static int arg_text(const char *args, size_t len, const char *key, gk_buf *out) {
    gk_slice v;
    int type = gk_json_find(args, len, key, &v);
    gk_buf_reset(out);
    if (type == GK_JSON_STRING) return gk_json_decode_string(v.ptr, v.len, out);
    if (type == GK_JSON_NUMBER) {
        gk_buf_append(out, v.ptr, v.len);
        return 1;
    }
    return 0;
}

/* A positive id from digits only (at most 15 of them). */
static int parse_id(const char *s, size_t n, int64_t *out) {
    size_t i;
    int64_t v = 0;
    while (n > 0 && is_space(*s)) s++, n--;
    while (n > 0 && is_space(s[n - 1])) n--;
    if (n == 0 || n > 15) return 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    if (v <= 0) return 0;
    *out = v;
    return 1;
}

/* Field `key` as a positive id: a JSON integer, or a string of digits (as a
 * form sends it). Returns 1 on success. */
static int arg_id(const char *args, size_t len, const char *key, int64_t *out) {
    gk_slice v;
    int type = gk_json_find(args, len, key, &v);
    if (type == GK_JSON_NUMBER) return gk_json_get_int(args, len, key, out) && *out > 0;
    if (type == GK_JSON_STRING) {
        gk_buf text = GK_BUF_INIT;
        int ok = gk_json_decode_string(v.ptr, v.len, &text) && parse_id(str(&text), text.len, out);
        gk_buf_free(&text);
        return ok;
    }
    return 0;
}

/* Field `key` as a flag: true/false, a number (non-zero is true) or a string
 * ("1", "true", "on", "yes" are true). Returns 1 if the field is set. */
static int arg_flag(const char *args, size_t len, const char *key, int *out) {
    gk_slice v;
    int type = gk_json_find(args, len, key, &v);
    if (type == GK_JSON_BOOL) return gk_json_get_bool(args, len, key, out);
    if (type == GK_JSON_NUMBER) {
        double d;
        if (!gk_json_get_double(args, len, key, &d)) return 0;
        *out = d != 0;
        return 1;
    }
    if (type == GK_JSON_STRING) {
        gk_buf text = GK_BUF_INIT;
        const char *t;
        gk_json_decode_string(v.ptr, v.len, &text);
        t = str(&text);
        *out = strcmp(t, "1") == 0 || strcmp(t, "true") == 0 || strcmp(t, "on") == 0 ||
               strcmp(t, "yes") == 0;
        gk_buf_free(&text);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/* The error of the last failure: a host call's {"code","message"} or one of
 * the plugin's own. */
static gk_buf g_err_code = GK_BUF_INIT, g_err_message = GK_BUF_INIT;

static void set_error(const char *code, const char *message) {
    gk_buf_reset(&g_err_code);
    gk_buf_reset(&g_err_message);
    gk_buf_append_cstr(&g_err_code, code);
    gk_buf_append_cstr(&g_err_message, message);
}

/* Keeps the last failed host call's error (for return_error) and logs it. */
static void capture_host_error(const char *what) {
    gk_buf line = GK_BUF_INIT;
    gk_last_error_parts(&g_err_code, &g_err_message);
    gk_buf_append_cstr(&line, what);
    LIT(&line, " failed: ");
    gk_buf_append(&line, g_err_code.data, g_err_code.len);
    LIT(&line, ": ");
    gk_buf_append(&line, g_err_message.data, g_err_message.len);
    if (!line.oom) gk_log(GK_LOG_WARN, line.data, line.len);
    gk_buf_free(&line);
}

/* This call's error result: the kept error's code and message. */
static uint64_t return_error(void) {
    return gk_return_error(g_err_code.len ? str(&g_err_code) : "host_error",
                           g_err_message.len ? str(&g_err_message) : "a host call failed");
}

/* ------------------------------------------------------------------------ */
/* Database                                                                 */
/* ------------------------------------------------------------------------ */

/* Runs a db_query / db_exec with sql and params (a JSON array, NULL for
 * none); result gets the host's answer. Returns 0 (error kept) on failure. */
static int db_call(const char *fn, const char *sql, const gk_buf *params, gk_buf *result) {
    gk_buf req = GK_BUF_INIT;
    int ok;
    gk_json_object_begin(&req);
    gk_json_key(&req, "query");
    gk_json_cstr(&req, sql);
    gk_json_key(&req, "args");
    if (params && params->len) gk_json_raw(&req, params->data, params->len);
    else gk_json_raw(&req, "[]", 2);
    gk_json_object_end(&req);
    if (req.oom) __builtin_trap();
    ok = gk_host_call(fn, req.data, req.len, result);
    gk_buf_free(&req);
    if (!ok) capture_host_error(fn);
    return ok;
}

/* db_query: rows gets the array of row objects, or null for none. */
static int db_query(const char *sql, const gk_buf *params, gk_buf *rows) {
    return db_call("db_query", sql, params, rows);
}

/* db_exec: *affected (may be NULL) gets the number of rows changed. */
static int db_exec(const char *sql, const gk_buf *params, int64_t *affected) {
    gk_buf res = GK_BUF_INIT;
    int ok = db_call("db_exec", sql, params, &res);
    if (ok && affected && !gk_json_get_int(str(&res), res.len, "affected", affected)) *affected = 0;
    gk_buf_free(&res);
    return ok;
}

/* Starts walking db_query's rows; 0 when there are none (null). */
static int rows_begin(gk_json_iter *it, const gk_buf *rows) {
    return rows->data && gk_json_iter_begin(it, rows->data, rows->len, '[');
}

/* The first row's integer column `key` (for single-value queries). */
static int first_int(const gk_buf *rows, const char *key, int64_t *out) {
    gk_json_iter it;
    gk_slice row;
    int type;
    if (!rows_begin(&it, rows) || !gk_json_iter_next(&it, NULL, &row, &type)) return 0;
    return type == GK_JSON_OBJECT && gk_json_get_int(row.ptr, row.len, key, out);
}

/* Writes "key": the rows as they came (an empty array for null). */
static void json_rows(gk_buf *out, const char *key, const gk_buf *rows) {
    gk_json_iter it;
    gk_json_key(out, key);
    if (rows_begin(&it, rows)) gk_json_raw(out, rows->data, rows->len);
    else gk_json_raw(out, "[]", 2);
}

/* Copies member `key` of the object row (raw JSON) to out as "as": value. */
static void copy_field(gk_buf *out, const gk_slice *row, const char *key, const char *as) {
    gk_slice v;
    gk_json_key(out, as);
    if (gk_json_find(row->ptr, row->len, key, &v) > GK_JSON_MISSING) gk_json_raw(out, v.ptr, v.len);
    else gk_json_null(out);
}

/* Params: a JSON array built with the gk_json_* writers. */
#define PARAMS_BEGIN(p) gk_json_array_begin(p)
#define PARAMS_END(p) gk_json_array_end(p)

static int g_ready;      /* the schema exists (checked once per instance) */
static int g_dialect;    /* GK_DB_SQLITE or GK_DB_POSTGRES */
static int g_fts;        /* SQLite: faq_fts exists and is kept in sync */
static int g_force_like; /* config search: like */

static int is_pg(void) { return g_dialect == GK_DB_POSTGRES; }

/* Timestamps are ISO-8601 text in UTC, like the host's own tables. */
#define NOW_SQLITE "strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now')"
#define NOW_PG "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"')"
#define BY_DIALECT(M) (is_pg() ? M(NOW_PG) : M(NOW_SQLITE))

static const char *const DDL_SQLITE[] = {
    "CREATE TABLE IF NOT EXISTS faq_categories (id INTEGER PRIMARY KEY, "
    "name TEXT NOT NULL UNIQUE, position INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS faq_articles (id INTEGER PRIMARY KEY, "
    "category_id INTEGER NOT NULL REFERENCES faq_categories (id), title TEXT NOT NULL, "
    "body TEXT NOT NULL, published INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, "
    "updated_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS faq_articles_category ON faq_articles (category_id, published)",
    NULL,
};

/* PostgreSQL: ids are chosen by the plugin (see the top of the file), so a
 * plain BIGINT key; the GIN index serves the full-text WHERE clause. */
static const char *const DDL_PG[] = {
    "CREATE TABLE IF NOT EXISTS faq_categories (id BIGINT PRIMARY KEY, "
    "name TEXT NOT NULL UNIQUE, position INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS faq_articles (id BIGINT PRIMARY KEY, "
    "category_id BIGINT NOT NULL REFERENCES faq_categories (id), title TEXT NOT NULL, "
    "body TEXT NOT NULL, published SMALLINT NOT NULL DEFAULT 0, created_at TEXT NOT NULL, "
    "updated_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS faq_articles_category ON faq_articles (category_id, published)",
    "CREATE INDEX IF NOT EXISTS faq_articles_fts ON faq_articles "
    "USING GIN (to_tsvector('simple', title || ' ' || body))",
    NULL,
};

/* Reads config "search" (auto | like). */
static void read_config(void) {
    gk_buf res = GK_BUF_INIT, value = GK_BUF_INIT;
    g_force_like = 0;
    if (gk_config_get("search", &res) && gk_json_get_string(str(&res), res.len, "value", &value)) {
        if (strcmp(str(&value), "like") == 0) g_force_like = 1;
        else if (strcmp(str(&value), "auto") != 0)
            gk_log_warn("config search: expected auto or like; using auto");
    }
    gk_buf_free(&res);
    gk_buf_free(&value);
}

/* Creates the tables (and the search index) once per instance. */
static int ensure_schema(void) {
    const char *const *ddl;
    if (g_ready) return 1;
    g_dialect = gk_db_dialect();
    if (g_dialect == GK_DB_UNKNOWN) {
        set_error("unavailable", "faq: the database cannot be reached");
        return 0;
    }
    read_config();
    for (ddl = is_pg() ? DDL_PG : DDL_SQLITE; *ddl; ddl++)
        if (!db_exec(*ddl, NULL, NULL)) return 0;
    g_fts = 0;
    if (!is_pg()) {
        /* FTS5 may be missing from the SQLite build: then search uses LIKE. */
        if (db_exec("CREATE VIRTUAL TABLE IF NOT EXISTS faq_fts USING fts5(title, body)", NULL,
                    NULL)) {
            g_fts = 1;
            /* Articles saved while the index was missing (or whose index
             * update failed) are added, rows of deleted articles removed. */
            if (!db_exec("DELETE FROM faq_fts WHERE rowid NOT IN (SELECT id FROM faq_articles)",
                         NULL, NULL) ||
                !db_exec("INSERT INTO faq_fts (rowid, title, body) SELECT id, title, body "
                         "FROM faq_articles WHERE id NOT IN (SELECT rowid FROM faq_fts)",
                         NULL, NULL))
                gk_log_warn("could not bring the search index up to date");
        } else
            gk_log_warn("FTS5 is not available: searching with LIKE");
    }
    g_ready = 1;
    return 1;
}

/* "fts5", "like" or "postgres": how search works right now. */
static const char *search_mode(void) {
    if (g_force_like) return "like";
    if (is_pg()) return "postgres";
    return g_fts ? "fts5" : "like";
}

/* Puts article id's text into faq_fts (SQLite with FTS5 only). */
static void fts_sync(int64_t id, const gk_buf *title, const gk_buf *body) {
    gk_buf p = GK_BUF_INIT;
    int ok;
    if (!g_fts) return;
    PARAMS_BEGIN(&p);
    gk_json_int(&p, id);
    PARAMS_END(&p);
    ok = db_exec("DELETE FROM faq_fts WHERE rowid = ?", &p, NULL);
    if (ok && title) {
        gk_buf_reset(&p);
        PARAMS_BEGIN(&p);
        gk_json_int(&p, id);
        gk_json_string(&p, str(title), title->len);
        gk_json_string(&p, str(body), body->len);
        PARAMS_END(&p);
        ok = db_exec("INSERT INTO faq_fts (rowid, title, body) VALUES (?, ?, ?)", &p, NULL);
    }
    if (!ok) gk_log_warn("the search index could not be updated; it is repaired on next load");
    gk_buf_free(&p);
}

/* ------------------------------------------------------------------------ */
/* Words of a search                                                        */
/* ------------------------------------------------------------------------ */

typedef struct word_list {
    int n;
    size_t len[SUGGEST_WORDS];
    char text[SUGGEST_WORDS][WORD_MAX + 1];
} word_list;

/* Bytes that make up a word: ASCII letters and digits, '_', '%', '-', and
 * non-ASCII text (UTF-8 letters; see punct_len for the exceptions). */
static int is_word_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '%' || c == '-' || c >= 0x80;
}

/* The length of the UTF-8 punctuation or space at s[i], or 0: Latin-1's
 * U+00A0..U+00BF (no-break space, guillemets, section sign, ...), General
 * Punctuation U+2000..U+206F (dashes, curly quotes, ellipsis, ...) and CJK
 * punctuation U+3000..U+303F separate words like ASCII punctuation does;
 * other non-ASCII text is part of words. */
static size_t punct_len(const char *s, size_t n, size_t i) {
    const unsigned char *u = (const unsigned char *)s + i;
    size_t left = n - i;
    if (left >= 2 && u[0] == 0xC2 && u[1] >= 0xA0 && u[1] <= 0xBF) return 2;
    if (left >= 3 && u[0] == 0xE2 && (u[1] == 0x80 || (u[1] == 0x81 && u[2] <= 0xAF))) return 3;
    if (left >= 3 && u[0] == 0xE3 && u[1] == 0x80) return 3;
    return 0;
}

/* How many bytes at s[i] separate words (0 inside a word). */
static size_t separator_len(const char *s, size_t n, size_t i) {
    size_t p = punct_len(s, n, i);
    if (p) return p;
    return is_word_byte((unsigned char)s[i]) ? 0 : 1;
}

/* Whether a word has a letter or digit (not just '_', '%', '-'). */
static int has_letter(const char *s, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80) return 1;
    }
    return 0;
}

/* Words a suggestion ignores (it also skips words under 3 characters). */
static const char *const STOP_WORDS[] = {
    "the", "and", "for", "with", "that", "this", "these", "those", "from", "have", "has",
    "had", "are", "was", "were", "been", "not", "but", "you", "your", "our", "can",
    "cannot", "could", "would", "should", "will", "does", "did", "doesn", "don", "isn",
    "won", "how", "what", "when", "where", "why", "who", "which", "there", "their", "they",
    "them", "then", "than", "into", "about", "after", "before", "again", "also", "just",
    "any", "all", "some", "please", "help", "hello", "thanks", "thank", "keep", "keeps",
    "still", "get", "gets", "got", "its", "very", "much", "more", "other", "out", "only",
    "now", "here", "since", "every", "while", "der", "die", "das", "und", "ist", "nicht",
    "ein", "eine", "einen", "einem", "mit", "f\xc3\xbcr", "von", "den", "dem", "des", "auf",
    "bei", "wie", "ich", "sie", "wir", "ihr", "geht", "kann", "mein", "meine", "hallo",
    "bitte", "danke", "noch", "immer", "seit", "oder", "aber", NULL,
};

static int is_stop_word(const char *w) {
    const char *const *s;
    for (s = STOP_WORDS; *s; s++)
        if (strcmp(*s, w) == 0) return 1;
    return 0;
}

static int ends_with(const char *w, size_t len, const char *suffix) {
    size_t n = strlen(suffix);
    return len >= n && memcmp(w + len - n, suffix, n) == 0;
}

/* A light English stemmer for suggestions; the result is used as a prefix,
 * so "dropping" -> "drop" also finds "drops" and "dropped". */
static size_t stem(char *w, size_t len) {
    int cut = 0;
    if (len > 5 && ends_with(w, len, "ing")) len -= 3, cut = 1;
    else if (len > 4 && ends_with(w, len, "ed")) len -= 2, cut = 1;
    else if (len > 3 && ends_with(w, len, "s") && !ends_with(w, len, "ss")) len -= 1;
    if (cut && len >= 4 && w[len - 1] == w[len - 2] && !strchr("aeioulsz", w[len - 1])) len--;
    w[len] = '\0';
    return len;
}

/* Cuts text into at most max distinct, lower-cased words. With significant
 * set (suggestions) short words and stop words are skipped and the rest
 * stemmed. */
static void split_words(const char *s, size_t n, int max, int significant, word_list *out) {
    size_t i = 0;
    out->n = 0;
    if (max > SUGGEST_WORDS) max = SUGGEST_WORDS;
    while (i < n && out->n < max) {
        size_t start, end, len, k;
        int j, dup = 0;
        char *w = out->text[out->n];
        while (i < n && (k = separator_len(s, n, i)) > 0) i += k;
        start = i;
        while (i < n && separator_len(s, n, i) == 0) i++;
        end = i;
        while (start < end && s[start] == '-') start++;
        while (end > start && s[end - 1] == '-') end--;
        len = utf8_cut(s + start, end - start, WORD_MAX);
        for (k = 0; k < len; k++) w[k] = ascii_lower(s[start + k]);
        w[len] = '\0';
        if (len == 0 || !has_letter(w, len)) continue;
        if (significant) {
            if (utf8_chars(w, len) < 3 || is_stop_word(w)) continue;
            len = stem(w, len);
        }
        for (j = 0; j < out->n; j++)
            if (out->len[j] == len && memcmp(out->text[j], w, len) == 0) dup = 1;
        if (dup) continue;
        out->len[out->n++] = len;
    }
}

/* FTS5: every word as a quoted prefix string, "w1"* AND "w2"* (or OR). */
static void fts5_query(const word_list *words, const char *op, gk_buf *out) {
    int i;
    size_t k;
    for (i = 0; i < words->n; i++) {
        if (i) gk_buf_append_cstr(out, op);
        gk_buf_append_char(out, '"');
        for (k = 0; k < words->len[i]; k++) {
            if (words->text[i][k] == '"') gk_buf_append_char(out, '"');
            gk_buf_append_char(out, words->text[i][k]);
        }
        LIT(out, "\"*");
    }
}

/* PostgreSQL: every word as a quoted prefix lexeme, 'w1':* & 'w2':* (or |). */
static void pg_query(const word_list *words, const char *op, gk_buf *out) {
    int i;
    size_t k;
    for (i = 0; i < words->n; i++) {
        if (i) gk_buf_append_cstr(out, op);
        gk_buf_append_char(out, '\'');
        for (k = 0; k < words->len[i]; k++) {
            char c = words->text[i][k];
            if (c == '\'') gk_buf_append_char(out, '\'');
            else if (c == '\\') gk_buf_append_char(out, '\\');
            gk_buf_append_char(out, c);
        }
        LIT(out, "':*");
    }
}

/* LIKE: %word% with '!' escaping '!', '%' and '_', as a JSON string param. */
static void like_param(gk_buf *params, const char *w, size_t len) {
    gk_buf pat = GK_BUF_INIT;
    size_t k;
    gk_buf_append_char(&pat, '%');
    for (k = 0; k < len; k++) {
        if (w[k] == '!' || w[k] == '%' || w[k] == '_') gk_buf_append_char(&pat, '!');
        gk_buf_append_char(&pat, w[k]);
    }
    gk_buf_append_char(&pat, '%');
    gk_json_string(params, str(&pat), pat.len);
    gk_buf_free(&pat);
}

/* ------------------------------------------------------------------------ */
/* Snippets                                                                 */
/* ------------------------------------------------------------------------ */

/* Writes "snippet": plain text and "parts": [{"text", "hit"}] from text
 * whose hits are wrapped in MARK_ON / MARK_OFF; runs of whitespace become
 * one space. The template shows hits with <mark>, everything escaped. */
static void json_snippet(gk_buf *out, const char *s, size_t n) {
    gk_buf plain = GK_BUF_INIT, part = GK_BUF_INIT;
    size_t i;
    int hit = 0, space = 0;
    gk_json_key(out, "parts");
    gk_json_array_begin(out);
    for (i = 0; i <= n; i++) {
        char c = i < n ? s[i] : MARK_OFF;
        if (c == MARK_ON || c == MARK_OFF) {
            if (part.len) {
                gk_json_object_begin(out);
                gk_json_key(out, "text");
                gk_json_string(out, str(&part), part.len);
                gk_json_key(out, "hit");
                gk_json_bool(out, hit);
                gk_json_object_end(out);
            }
            gk_buf_reset(&part);
            hit = c == MARK_ON;
            continue;
        }
        if (is_space(c)) {
            if (space || plain.len == 0) continue;
            space = 1;
            c = ' ';
        } else
            space = 0;
        gk_buf_append_char(&part, c);
        gk_buf_append_char(&plain, c);
    }
    gk_json_array_end(out);
    while (plain.len && plain.data[plain.len - 1] == ' ') plain.data[--plain.len] = '\0';
    gk_json_key(out, "snippet");
    gk_json_string(out, str(&plain), plain.len);
    gk_buf_free(&plain);
    gk_buf_free(&part);
}

/* Length of the word of words that starts at s (ASCII case-insensitively),
 * 0 if none does. */
static size_t word_at(const word_list *words, const char *s, size_t n) {
    int i;
    for (i = 0; i < words->n; i++) {
        size_t k, len = words->len[i];
        if (len == 0 || len > n) continue;
        for (k = 0; k < len && ascii_lower(s[k]) == words->text[i][k]; k++) {
        }
        if (k == len) return len;
    }
    return 0;
}

/* The LIKE path's snippet: about 200 bytes of body around the first hit,
 * hits marked, "…" where text was cut. */
static void like_snippet(const word_list *words, const char *body, size_t n, gk_buf *out) {
    size_t first = n, start, end, i;
    for (i = 0; i < n && first == n; i++)
        if (word_at(words, body + i, n - i)) first = i;
    if (first == n) first = 0;
    start = first > 60 ? first - 60 : 0;
    while (start > 0 && start < n && ((unsigned char)body[start] & 0xC0) == 0x80) start++;
    if (start > 0) { /* begin at a word when one starts close by */
        for (i = start; i < first && i < start + 20; i++)
            if (is_space(body[i])) {
                start = i + 1;
                break;
            }
    }
    end = start + 200 < n ? start + 200 : n;
    if (end < n) {
        end = utf8_cut(body + start, n - start, end - start) + start;
        for (i = end; i > end - 30 && i > first; i--)
            if (is_space(body[i])) {
                end = i;
                break;
            }
    }
    if (start > 0) LIT(out, "\xe2\x80\xa6 ");
    for (i = start; i < end;) {
        size_t len = word_at(words, body + i, end - i);
        if (len) {
            gk_buf_append_char(out, MARK_ON);
            gk_buf_append(out, body + i, len);
            gk_buf_append_char(out, MARK_OFF);
            i += len;
        } else
            gk_buf_append_char(out, body[i++]);
    }
    if (end < n) LIT(out, " \xe2\x80\xa6");
}

/* ------------------------------------------------------------------------ */
/* Searching                                                                */
/* ------------------------------------------------------------------------ */

/* Appends the article URL (relative to the app's root). */
static void json_article_url(gk_buf *out, int64_t id) {
    gk_buf url = GK_BUF_INIT;
    LIT(&url, "/faq/article/");
    append_int(&url, id);
    gk_json_key(out, "url");
    gk_json_string(out, str(&url), url.len);
    gk_buf_free(&url);
}

/* Writes "items": the published articles matching every word (any word with
 * any set), best first, at most limit. Returns 0 (error kept) on failure. */
static int search_items(const word_list *words, int any, int limit, gk_buf *out) {
    gk_buf sql = GK_BUF_INIT, p = GK_BUF_INIT, q = GK_BUF_INIT, rows = GK_BUF_INIT,
           snip = GK_BUF_INIT;
    const char *mode = search_mode();
    gk_json_iter it;
    gk_slice row;
    int type, i, ok;

    PARAMS_BEGIN(&p);
    if (strcmp(mode, "fts5") == 0) {
        fts5_query(words, any ? " OR " : " AND ", &q);
        LIT(&sql, "SELECT a.id, a.title, c.name AS category, "
                  "snippet(faq_fts, 1, ?, ?, ?, 24) AS snippet "
                  "FROM faq_fts JOIN faq_articles a ON a.id = faq_fts.rowid "
                  "JOIN faq_categories c ON c.id = a.category_id "
                  "WHERE faq_fts MATCH ? AND a.published = 1 "
                  "ORDER BY bm25(faq_fts, 5.0, 1.0), a.id LIMIT ");
        gk_json_cstr(&p, "\x02");
        gk_json_cstr(&p, "\x03");
        gk_json_cstr(&p, "\xe2\x80\xa6");
        gk_json_string(&p, str(&q), q.len);
    } else if (strcmp(mode, "postgres") == 0) {
        pg_query(words, any ? " | " : " & ", &q);
        LIT(&sql, "SELECT a.id, a.title, c.name AS category, "
                  "ts_headline('simple', a.body, q, ?) AS snippet, "
                  "ts_rank(setweight(to_tsvector('simple', a.title), 'A') || "
                  "setweight(to_tsvector('simple', a.body), 'D'), q) AS score "
                  "FROM faq_articles a JOIN faq_categories c ON c.id = a.category_id "
                  "CROSS JOIN to_tsquery('simple', ?) AS q "
                  "WHERE a.published = 1 AND to_tsvector('simple', a.title || ' ' || a.body) @@ q "
                  "ORDER BY score DESC, a.id LIMIT ");
        gk_json_cstr(&p, "StartSel=\"\x02\", StopSel=\"\x03\", MaxWords=30, MinWords=12, "
                         "MaxFragments=2, FragmentDelimiter=\" \xe2\x80\xa6 \"");
        gk_json_string(&p, str(&q), q.len);
    } else {
        /* A title hit counts three times a body hit. */
        LIT(&sql, "SELECT a.id, a.title, a.body, c.name AS category, (");
        for (i = 0; i < words->n; i++) {
            if (i) LIT(&sql, " + ");
            LIT(&sql, "CASE WHEN lower(a.title) LIKE ? ESCAPE '!' THEN 3 ELSE 0 END + "
                      "CASE WHEN lower(a.body) LIKE ? ESCAPE '!' THEN 1 ELSE 0 END");
            like_param(&p, words->text[i], words->len[i]);
            like_param(&p, words->text[i], words->len[i]);
        }
        LIT(&sql, ") AS score FROM faq_articles a JOIN faq_categories c ON c.id = a.category_id "
                  "WHERE a.published = 1 AND (");
        for (i = 0; i < words->n; i++) {
            if (i) gk_buf_append_cstr(&sql, any ? " OR " : " AND ");
            LIT(&sql, "(lower(a.title) LIKE ? ESCAPE '!' OR lower(a.body) LIKE ? ESCAPE '!')");
            like_param(&p, words->text[i], words->len[i]);
            like_param(&p, words->text[i], words->len[i]);
        }
        LIT(&sql, ") ORDER BY score DESC, a.id LIMIT ");
    }
    append_int(&sql, limit);
    PARAMS_END(&p);

    gk_json_key(out, "items");
    gk_json_array_begin(out);
    ok = db_query(str(&sql), &p, &rows);
    if (ok && rows_begin(&it, &rows)) {
        while (gk_json_iter_next(&it, NULL, &row, &type)) {
            int64_t id;
            if (type != GK_JSON_OBJECT || !gk_json_get_int(row.ptr, row.len, "id", &id)) continue;
            gk_json_object_begin(out);
            gk_json_key(out, "id");
            gk_json_int(out, id);
            copy_field(out, &row, "title", "title");
            copy_field(out, &row, "category", "category");
            json_article_url(out, id);
            gk_buf_reset(&snip);
            if (strcmp(mode, "like") == 0) {
                gk_buf body = GK_BUF_INIT;
                gk_json_get_string(row.ptr, row.len, "body", &body);
                like_snippet(words, str(&body), body.len, &snip);
                gk_buf_free(&body);
            } else if (!gk_json_get_string(row.ptr, row.len, "snippet", &snip))
                gk_buf_reset(&snip);
            json_snippet(out, str(&snip), snip.len);
            gk_json_object_end(out);
        }
    }
    gk_json_array_end(out);
    gk_buf_free(&sql);
    gk_buf_free(&p);
    gk_buf_free(&q);
    gk_buf_free(&rows);
    gk_buf_free(&snip);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Articles and categories                                                  */
/* ------------------------------------------------------------------------ */

/* What a save is asked to store, cleaned. */
typedef struct article_input {
    int64_t id; /* 0: a new article */
    gk_buf title, body;
    int64_t category_id; /* 0: none or unknown */
    int category_given;  /* a category was named (even an unknown one) */
    int published, published_given;
} article_input;

static void input_free(article_input *in) {
    gk_buf_free(&in->title);
    gk_buf_free(&in->body);
}

/* What is wrong with an input: per field an i18n key (for the form) and an
 * English message (for the JSON function). */
typedef struct problems {
    int n;
    const char *field[3], *key[3], *message[3];
} problems;

static void add_problem(problems *p, const char *field, const char *key, const char *message) {
    if (p->n < 3) {
        p->field[p->n] = field;
        p->key[p->n] = key;
        p->message[p->n] = message;
        p->n++;
    }
}

/* Whether category id exists. Returns -1 on a database error. */
static int category_exists(int64_t id) {
    gk_buf p = GK_BUF_INIT, rows = GK_BUF_INIT;
    int64_t found;
    int r;
    PARAMS_BEGIN(&p);
    gk_json_int(&p, id);
    PARAMS_END(&p);
    if (!db_query("SELECT id FROM faq_categories WHERE id = ?", &p, &rows)) r = -1;
    else r = first_int(&rows, "id", &found);
    gk_buf_free(&p);
    gk_buf_free(&rows);
    return r;
}

/* Checks an input; returns -1 on a database error, else the problem count. */
static int validate(const article_input *in, problems *out) {
    size_t n;
    out->n = 0;
    n = utf8_chars(str(&in->title), in->title.len);
    if (n == 0) add_problem(out, "title", "error.title_required", "title is required");
    else if (n > TITLE_MAX)
        add_problem(out, "title", "error.title_too_long", "title is longer than 200 characters");
    n = utf8_chars(str(&in->body), in->body.len);
    if (n == 0) add_problem(out, "body", "error.body_required", "body is required");
    else if (n > BODY_MAX)
        add_problem(out, "body", "error.body_too_long", "body is longer than 20000 characters");
    if (!in->category_given)
        add_problem(out, "category", "error.category_required", "category is required");
    else if (in->category_id <= 0)
        add_problem(out, "category", "error.category_unknown", "the category does not exist");
    else {
        int exists = category_exists(in->category_id);
        if (exists < 0) return -1;
        if (!exists)
            add_problem(out, "category", "error.category_unknown", "the category does not exist");
    }
    return out->n;
}

#define INSERT_ARTICLE(now)                                                                    \
    "INSERT INTO faq_articles (id, category_id, title, body, published, created_at, "         \
    "updated_at) VALUES (?, ?, ?, ?, ?, " now ", " now ") ON CONFLICT DO NOTHING"
#define UPDATE_ARTICLE(now)                                                                    \
    "UPDATE faq_articles SET category_id = ?, title = ?, body = ?, published = ?, "            \
    "updated_at = " now " WHERE id = ?"
#define UPDATE_ARTICLE_KEEP(now)                                                               \
    "UPDATE faq_articles SET category_id = ?, title = ?, body = ?, updated_at = " now          \
    " WHERE id = ?"

/* Stores a validated input. Returns 1 and the id, 0 when an update finds no
 * such article, -1 on a database error (kept). */
static int store_article(article_input *in, int64_t *id_out) {
    gk_buf p = GK_BUF_INIT, rows = GK_BUF_INIT;
    int64_t affected = 0, id = in->id;
    int tries, r = 1;
    if (id > 0) {
        PARAMS_BEGIN(&p);
        gk_json_int(&p, in->category_id);
        gk_json_string(&p, str(&in->title), in->title.len);
        gk_json_string(&p, str(&in->body), in->body.len);
        if (in->published_given) gk_json_int(&p, in->published ? 1 : 0);
        gk_json_int(&p, id);
        PARAMS_END(&p);
        if (!db_exec(in->published_given ? BY_DIALECT(UPDATE_ARTICLE)
                                         : BY_DIALECT(UPDATE_ARTICLE_KEEP),
                     &p, &affected))
            r = -1;
        else if (affected == 0)
            r = 0;
    } else {
        for (tries = 0, affected = 0; affected == 0 && tries < INSERT_TRIES; tries++) {
            gk_buf_reset(&p);
            if (!db_query("SELECT COALESCE(MAX(id), 0) + 1 AS next FROM faq_articles", NULL,
                          &rows) ||
                !first_int(&rows, "next", &id)) {
                r = -1;
                break;
            }
            PARAMS_BEGIN(&p);
            gk_json_int(&p, id);
            gk_json_int(&p, in->category_id);
            gk_json_string(&p, str(&in->title), in->title.len);
            gk_json_string(&p, str(&in->body), in->body.len);
            gk_json_int(&p, in->published ? 1 : 0);
            PARAMS_END(&p);
            if (!db_exec(BY_DIALECT(INSERT_ARTICLE), &p, &affected)) {
                r = -1;
                break;
            }
        }
        if (r == 1 && affected == 0) {
            set_error("conflict", "faq: no free article id after several tries; try again");
            r = -1;
        }
    }
    if (r == 1) {
        fts_sync(id, &in->title, &in->body);
        *id_out = id;
    }
    gk_buf_free(&p);
    gk_buf_free(&rows);
    return r;
}

/* Id of the category called name: 1 found, 0 not, -1 database error. */
static int category_by_name(const gk_buf *name, int64_t *id) {
    gk_buf p = GK_BUF_INIT, rows = GK_BUF_INIT;
    int r;
    PARAMS_BEGIN(&p);
    gk_json_string(&p, str(name), name->len);
    PARAMS_END(&p);
    if (!db_query("SELECT id FROM faq_categories WHERE name = ?", &p, &rows)) r = -1;
    else r = first_int(&rows, "id", id);
    gk_buf_free(&p);
    gk_buf_free(&rows);
    return r;
}

/* Creates category name (cleaned, 1..CATEGORY_MAX characters), or finds it.
 * Returns 1 created, 0 it existed (id set either way), -1 database error. */
static int store_category(const gk_buf *name, int64_t position, int position_given,
                          int64_t *id) {
    gk_buf p = GK_BUF_INIT, rows = GK_BUF_INIT;
    int64_t affected = 0, next_pos = 1;
    int tries, r = -1, found;
    for (tries = 0; tries < INSERT_TRIES; tries++) {
        found = category_by_name(name, id);
        if (found != 0) {
            r = found < 0 ? -1 : 0;
            break;
        }
        if (!db_query("SELECT COALESCE(MAX(id), 0) + 1 AS next, "
                      "COALESCE(MAX(position), 0) + 1 AS pos FROM faq_categories",
                      NULL, &rows) ||
            !first_int(&rows, "next", id) || !first_int(&rows, "pos", &next_pos))
            break;
        gk_buf_reset(&p);
        PARAMS_BEGIN(&p);
        gk_json_int(&p, *id);
        gk_json_string(&p, str(name), name->len);
        gk_json_int(&p, position_given ? position : next_pos);
        PARAMS_END(&p);
        if (!db_exec("INSERT INTO faq_categories (id, name, position) VALUES (?, ?, ?) "
                     "ON CONFLICT DO NOTHING",
                     &p, &affected))
            break;
        if (affected == 1) {
            r = 1;
            break;
        }
        /* Someone else took the id or the name: look again. */
    }
    if (tries == INSERT_TRIES) set_error("conflict", "faq: no free category id; try again");
    gk_buf_free(&p);
    gk_buf_free(&rows);
    return r;
}

/* Checks a category name; returns its problem's i18n key or NULL. */
static const char *category_problem(const gk_buf *name, const char **message) {
    size_t n = utf8_chars(str(name), name->len);
    if (n == 0) {
        *message = "name is required";
        return "error.category_name_required";
    }
    if (n > CATEGORY_MAX) {
        *message = "name is longer than 100 characters";
        return "error.category_name_too_long";
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Results                                                                  */
/* ------------------------------------------------------------------------ */

/* {"template": name, "context": { ... — the caller writes the context
 * members, then page_end closes it. */
static void page_begin(gk_buf *b, const char *name) {
    gk_json_object_begin(b);
    gk_json_key(b, "template");
    gk_json_cstr(b, name);
    gk_json_key(b, "context");
    gk_json_object_begin(b);
}

static uint64_t page_end(gk_buf *b, int status) {
    gk_json_object_end(b);
    if (status != 200) {
        gk_json_key(b, "status");
        gk_json_int(b, status);
    }
    gk_json_object_end(b);
    return gk_return_buf(b);
}

/* The 404 page for an article that is not there (or not published). */
static uint64_t not_found(int64_t id) {
    gk_buf b = GK_BUF_INIT;
    page_begin(&b, "not_found.html");
    gk_json_key(&b, "id");
    gk_json_int(&b, id);
    return page_end(&b, 404);
}

/* ------------------------------------------------------------------------ */
/* Public pages                                                             */
/* ------------------------------------------------------------------------ */

/* GET /faq: published articles grouped by category (in category order). */
static uint64_t fn_portal(void) {
    gk_buf b = GK_BUF_INIT, rows = GK_BUF_INIT;
    gk_json_iter it;
    gk_slice row;
    int type, open = 0;
    int64_t current = -1, count = 0;
    if (!db_query("SELECT c.id AS category_id, c.name AS category, a.id, a.title "
                  "FROM faq_categories c JOIN faq_articles a "
                  "ON a.category_id = c.id AND a.published = 1 "
                  "ORDER BY c.position, c.name, c.id, a.title, a.id LIMIT 2000",
                  NULL, &rows))
        return return_error();
    page_begin(&b, "portal.html");
    gk_json_key(&b, "categories");
    gk_json_array_begin(&b);
    if (rows_begin(&it, &rows)) {
        while (gk_json_iter_next(&it, NULL, &row, &type)) {
            int64_t cat, id;
            if (type != GK_JSON_OBJECT || !gk_json_get_int(row.ptr, row.len, "category_id", &cat) ||
                !gk_json_get_int(row.ptr, row.len, "id", &id))
                continue;
            if (cat != current) {
                if (open) {
                    gk_json_array_end(&b);
                    gk_json_object_end(&b);
                }
                gk_json_object_begin(&b);
                gk_json_key(&b, "id");
                gk_json_int(&b, cat);
                copy_field(&b, &row, "category", "name");
                gk_json_key(&b, "articles");
                gk_json_array_begin(&b);
                open = 1;
                current = cat;
            }
            gk_json_object_begin(&b);
            gk_json_key(&b, "id");
            gk_json_int(&b, id);
            copy_field(&b, &row, "title", "title");
            gk_json_object_end(&b);
            count++;
        }
    }
    if (open) {
        gk_json_array_end(&b);
        gk_json_object_end(&b);
    }
    gk_json_array_end(&b);
    gk_json_key(&b, "article_count");
    gk_json_int(&b, count);
    gk_buf_free(&rows);
    return page_end(&b, 200);
}

/* How a search text fares before it reaches the database. */
enum { Q_EMPTY, Q_TOO_LONG, Q_NO_WORDS, Q_OK };

static int prepare_query(const gk_buf *q, int max_words, word_list *words) {
    words->n = 0;
    if (q->len == 0) return Q_EMPTY;
    if (utf8_chars(str(q), q->len) > QUERY_MAX) return Q_TOO_LONG;
    split_words(str(q), q->len, max_words, 0, words);
    return words->n ? Q_OK : Q_NO_WORDS;
}

/* GET /faq/search?q=: results, or why there are none. */
static uint64_t fn_search_page(const char *args, size_t len) {
    gk_buf b = GK_BUF_INIT, raw = GK_BUF_INIT, q = GK_BUF_INIT;
    word_list words;
    int state, status = 200;
    static const char *const STATES[] = {"empty", "too_long", "no_words", "results"};
    arg_text(args, len, "q", &raw);
    clean_text(str(&raw), raw.len, 0, &q);
    gk_buf_free(&raw);
    state = prepare_query(&q, SEARCH_WORDS, &words);
    page_begin(&b, "search.html");
    gk_json_key(&b, "q");
    gk_json_string(&b, str(&q), q.len);
    gk_json_key(&b, "state");
    gk_json_cstr(&b, STATES[state]);
    gk_json_key(&b, "max_length");
    gk_json_int(&b, QUERY_MAX);
    gk_json_key(&b, "mode");
    gk_json_cstr(&b, search_mode());
    if (state == Q_OK) {
        if (!search_items(&words, 0, SEARCH_LIMIT, &b)) {
            gk_buf_free(&b);
            gk_buf_free(&q);
            return return_error();
        }
    } else {
        gk_json_key(&b, "items");
        gk_json_raw(&b, "[]", 2);
        if (state == Q_TOO_LONG) status = 400;
    }
    gk_buf_free(&q);
    return page_end(&b, status);
}

/* Writes "paragraphs": [[line, ...], ...] — paragraphs are separated by
 * blank lines; the template joins a paragraph's lines with <br>. */
static void json_paragraphs(gk_buf *out, const char *s, size_t n) {
    size_t i = 0;
    int open = 0;
    gk_json_key(out, "paragraphs");
    gk_json_array_begin(out);
    while (i < n) {
        size_t start = i, end, k;
        int blank = 1;
        while (i < n && s[i] != '\n') i++;
        end = i;
        if (i < n) i++; /* the '\n' */
        for (k = start; k < end; k++)
            if (!is_space(s[k])) blank = 0;
        if (blank) {
            if (open) gk_json_array_end(out);
            open = 0;
            continue;
        }
        while (end > start && is_space(s[end - 1])) end--;
        if (!open) gk_json_array_begin(out);
        open = 1;
        gk_json_string(out, s + start, end - start);
    }
    if (open) gk_json_array_end(out);
    gk_json_array_end(out);
}

/* GET /faq/article/{id}: a published article, else the 404 page. */
static uint64_t fn_article_page(const char *args, size_t len) {
    gk_buf b = GK_BUF_INIT, p = GK_BUF_INIT, rows = GK_BUF_INIT, body = GK_BUF_INIT,
           related = GK_BUF_INIT;
    gk_json_iter it;
    gk_slice row;
    int type;
    int64_t id = 0, category = 0;
    if (!arg_id(args, len, "id", &id)) return not_found(0);
    PARAMS_BEGIN(&p);
    gk_json_int(&p, id);
    PARAMS_END(&p);
    if (!db_query("SELECT a.id, a.title, a.body, a.created_at, a.updated_at, "
                  "c.id AS category_id, c.name AS category "
                  "FROM faq_articles a JOIN faq_categories c ON c.id = a.category_id "
                  "WHERE a.id = ? AND a.published = 1",
                  &p, &rows)) {
        gk_buf_free(&p);
        return return_error();
    }
    if (!rows_begin(&it, &rows) || !gk_json_iter_next(&it, NULL, &row, &type) ||
        type != GK_JSON_OBJECT) {
        gk_buf_free(&p);
        gk_buf_free(&rows);
        return not_found(id);
    }
    gk_json_get_int(row.ptr, row.len, "category_id", &category);
    gk_json_get_string(row.ptr, row.len, "body", &body);
    page_begin(&b, "article.html");
    gk_json_key(&b, "article");
    gk_json_object_begin(&b);
    gk_json_key(&b, "id");
    gk_json_int(&b, id);
    copy_field(&b, &row, "title", "title");
    copy_field(&b, &row, "category_id", "category_id");
    copy_field(&b, &row, "category", "category");
    copy_field(&b, &row, "created_at", "created_at");
    copy_field(&b, &row, "updated_at", "updated_at");
    json_paragraphs(&b, str(&body), body.len);
    gk_json_object_end(&b);

    /* Other published articles of the same category. */
    gk_buf_reset(&p);
    PARAMS_BEGIN(&p);
    gk_json_int(&p, category);
    gk_json_int(&p, id);
    PARAMS_END(&p);
    if (!db_query("SELECT id, title FROM faq_articles WHERE category_id = ? AND id <> ? "
                  "AND published = 1 ORDER BY title, id LIMIT 5",
                  &p, &related)) {
        gk_buf_free(&related); /* a page without them is still a page */
    }
    json_rows(&b, "related", &related);
    gk_buf_free(&p);
    gk_buf_free(&rows);
    gk_buf_free(&body);
    gk_buf_free(&related);
    return page_end(&b, 200);
}

/* ------------------------------------------------------------------------ */
/* Editor pages (faq.edit, checked by the host before the call)             */
/* ------------------------------------------------------------------------ */

/* The manage page; with a category form error, re-rendered with status 422. */
static uint64_t manage_page(const char *category_error, const gk_buf *category_name) {
    gk_buf b = GK_BUF_INIT, articles = GK_BUF_INIT, categories = GK_BUF_INIT;
    if (!db_query("SELECT a.id, a.title, a.published, a.updated_at, a.category_id, "
                  "c.name AS category FROM faq_articles a "
                  "JOIN faq_categories c ON c.id = a.category_id "
                  "ORDER BY c.position, c.name, a.title, a.id LIMIT 2000",
                  NULL, &articles) ||
        !db_query("SELECT c.id, c.name, c.position, COUNT(a.id) AS articles, "
                  "COALESCE(SUM(a.published), 0) AS published "
                  "FROM faq_categories c LEFT JOIN faq_articles a ON a.category_id = c.id "
                  "GROUP BY c.id, c.name, c.position ORDER BY c.position, c.name",
                  NULL, &categories)) {
        gk_buf_free(&articles);
        gk_buf_free(&categories);
        return return_error();
    }
    page_begin(&b, "manage.html");
    json_rows(&b, "articles", &articles);
    json_rows(&b, "categories", &categories);
    gk_json_key(&b, "category_error");
    gk_json_cstr(&b, category_error);
    gk_json_key(&b, "category_name");
    gk_json_string(&b, category_name ? str(category_name) : "",
                   category_name ? category_name->len : 0);
    gk_buf_free(&articles);
    gk_buf_free(&categories);
    return page_end(&b, category_error ? 422 : 200);
}

/* The article form, for a new article (id 0) or an existing one, with the
 * values to show and the problems found (status 422 when there are any). */
static uint64_t form_page(const article_input *in, const problems *probs) {
    gk_buf b = GK_BUF_INIT, categories = GK_BUF_INIT;
    int i;
    if (!db_query("SELECT id, name FROM faq_categories ORDER BY position, name", NULL,
                  &categories))
        return return_error();
    page_begin(&b, "edit.html");
    gk_json_key(&b, "mode");
    gk_json_cstr(&b, in->id ? "edit" : "new");
    gk_json_key(&b, "article");
    gk_json_object_begin(&b);
    gk_json_key(&b, "id");
    if (in->id) gk_json_int(&b, in->id);
    else gk_json_null(&b);
    gk_json_key(&b, "title");
    gk_json_string(&b, str(&in->title), in->title.len);
    gk_json_key(&b, "body");
    gk_json_string(&b, str(&in->body), in->body.len);
    gk_json_key(&b, "category_id");
    gk_json_int(&b, in->category_id);
    gk_json_key(&b, "published");
    gk_json_bool(&b, in->published);
    gk_json_object_end(&b);
    json_rows(&b, "categories", &categories);
    gk_json_key(&b, "errors");
    gk_json_object_begin(&b);
    for (i = 0; probs && i < probs->n; i++) {
        gk_json_key(&b, probs->field[i]);
        gk_json_cstr(&b, probs->key[i]);
    }
    gk_json_object_end(&b);
    gk_json_key(&b, "limits");
    gk_json_object_begin(&b);
    gk_json_key(&b, "title");
    gk_json_int(&b, TITLE_MAX);
    gk_json_key(&b, "body");
    gk_json_int(&b, BODY_MAX);
    gk_json_object_end(&b);
    gk_buf_free(&categories);
    return page_end(&b, probs && probs->n ? 422 : 200);
}

/* Loads article id (any state) into in. 1 found, 0 not, -1 error. */
static int load_article(int64_t id, article_input *in) {
    gk_buf p = GK_BUF_INIT, rows = GK_BUF_INIT;
    gk_json_iter it;
    gk_slice row;
    int type, r = 0;
    int64_t published = 0;
    PARAMS_BEGIN(&p);
    gk_json_int(&p, id);
    PARAMS_END(&p);
    if (!db_query("SELECT id, title, body, category_id, published FROM faq_articles "
                  "WHERE id = ?",
                  &p, &rows))
        r = -1;
    else if (rows_begin(&it, &rows) && gk_json_iter_next(&it, NULL, &row, &type) &&
             type == GK_JSON_OBJECT) {
        in->id = id;
        gk_json_get_string(row.ptr, row.len, "title", &in->title);
        gk_json_get_string(row.ptr, row.len, "body", &in->body);
        gk_json_get_int(row.ptr, row.len, "category_id", &in->category_id);
        gk_json_get_int(row.ptr, row.len, "published", &published);
        in->published = published != 0;
        r = 1;
    }
    gk_buf_free(&p);
    gk_buf_free(&rows);
    return r;
}

/* Reads the article form's fields (title, body, category_id, published). */
static void read_form(const char *args, size_t len, article_input *in) {
    gk_buf raw = GK_BUF_INIT;
    arg_text(args, len, "title", &raw);
    clean_text(str(&raw), raw.len, 0, &in->title);
    arg_text(args, len, "body", &raw);
    clean_text(str(&raw), raw.len, 1, &in->body);
    gk_buf_free(&raw);
    in->category_given = gk_json_find(args, len, "category_id", NULL) > GK_JSON_NULL;
    if (!arg_id(args, len, "category_id", &in->category_id)) in->category_id = 0;
    /* A checkbox: absent means unchecked. */
    if (!arg_flag(args, len, "published", &in->published)) in->published = 0;
    in->published_given = 1;
    /* An empty <select> value is no choice at all. */
    if (in->category_given) {
        gk_buf v = GK_BUF_INIT;
        if (arg_text(args, len, "category_id", &v) && v.len == 0) in->category_given = 0;
        gk_buf_free(&v);
    }
}

/* GET /faq/manage/new */
static uint64_t fn_new_page(void) {
    article_input in = {0, GK_BUF_INIT, GK_BUF_INIT, 0, 0, 0, 0};
    uint64_t r = form_page(&in, NULL);
    input_free(&in);
    return r;
}

/* POST /faq/manage/new and POST /faq/manage/{id}: validate, save, redirect. */
static uint64_t fn_save_page(const char *args, size_t len, int update) {
    article_input in = {0, GK_BUF_INIT, GK_BUF_INIT, 0, 0, 0, 0};
    problems probs;
    int64_t id = 0;
    int n, r;
    uint64_t result;
    if (update) {
        article_input old = {0, GK_BUF_INIT, GK_BUF_INIT, 0, 0, 0, 0};
        if (!arg_id(args, len, "id", &id)) return not_found(0);
        r = load_article(id, &old);
        input_free(&old);
        if (r < 0) return return_error();
        if (r == 0) return not_found(id);
        in.id = id;
    }
    read_form(args, len, &in);
    n = validate(&in, &probs);
    if (n < 0) result = return_error();
    else if (n > 0) result = form_page(&in, &probs);
    else {
        r = store_article(&in, &id);
        if (r < 0) result = return_error();
        else if (r == 0) result = not_found(in.id);
        else result = gk_return_redirect(update ? "../manage?done=saved"
                                                : "../manage?done=created");
    }
    input_free(&in);
    return result;
}

/* GET /faq/manage/{id} */
static uint64_t fn_edit_page(const char *args, size_t len) {
    article_input in = {0, GK_BUF_INIT, GK_BUF_INIT, 0, 0, 0, 0};
    int64_t id;
    int r;
    uint64_t result;
    if (!arg_id(args, len, "id", &id)) return not_found(0);
    r = load_article(id, &in);
    if (r < 0) result = return_error();
    else if (r == 0) result = not_found(id);
    else result = form_page(&in, NULL);
    input_free(&in);
    return result;
}

/* POST /faq/manage/{id}/publish: published=1/0, or toggles without it. */
static uint64_t fn_publish_page(const char *args, size_t len) {
    gk_buf p = GK_BUF_INIT, rows = GK_BUF_INIT;
    int64_t id, affected = 0, now = 0;
    int flag, ok;
    if (!arg_id(args, len, "id", &id)) return not_found(0);
    PARAMS_BEGIN(&p);
    if (arg_flag(args, len, "published", &flag)) {
        gk_json_int(&p, flag ? 1 : 0);
        gk_json_int(&p, id);
        PARAMS_END(&p);
        ok = db_exec("UPDATE faq_articles SET published = ? WHERE id = ?", &p, &affected);
    } else {
        gk_json_int(&p, id);
        PARAMS_END(&p);
        ok = db_exec("UPDATE faq_articles SET published = 1 - published WHERE id = ?", &p,
                     &affected);
    }
    if (ok && affected) {
        gk_buf_reset(&p);
        PARAMS_BEGIN(&p);
        gk_json_int(&p, id);
        PARAMS_END(&p);
        ok = db_query("SELECT published FROM faq_articles WHERE id = ?", &p, &rows) &&
             first_int(&rows, "published", &now);
    }
    gk_buf_free(&rows);
    if (!ok) {
        gk_buf_free(&p);
        return return_error();
    }
    gk_buf_free(&p);
    if (!affected) return not_found(id);
    return gk_return_redirect(now ? "../../manage?done=published"
                                  : "../../manage?done=unpublished");
}

/* POST /faq/manage/{id}/delete */
static uint64_t fn_delete_page(const char *args, size_t len) {
    gk_buf p = GK_BUF_INIT;
    int64_t id, affected = 0;
    int ok;
    if (!arg_id(args, len, "id", &id)) return not_found(0);
    PARAMS_BEGIN(&p);
    gk_json_int(&p, id);
    PARAMS_END(&p);
    ok = db_exec("DELETE FROM faq_articles WHERE id = ?", &p, &affected);
    gk_buf_free(&p);
    if (!ok) return return_error();
    if (!affected) return not_found(id);
    fts_sync(id, NULL, NULL);
    return gk_return_redirect("../../manage?done=deleted");
}

/* POST /faq/manage/categories: name=... */
static uint64_t fn_category_page(const char *args, size_t len) {
    gk_buf raw = GK_BUF_INIT, name = GK_BUF_INIT;
    const char *problem, *message;
    int64_t id;
    int r;
    uint64_t result;
    arg_text(args, len, "name", &raw);
    clean_text(str(&raw), raw.len, 0, &name);
    gk_buf_free(&raw);
    problem = category_problem(&name, &message);
    if (problem) result = manage_page(problem, &name);
    else {
        r = store_category(&name, 0, 0, &id);
        if (r < 0) result = return_error();
        else if (r == 0) result = manage_page("error.category_exists", &name);
        else result = gk_return_redirect("../manage?done=category");
    }
    gk_buf_free(&name);
    return result;
}

/* ------------------------------------------------------------------------ */
/* JSON functions                                                           */
/* ------------------------------------------------------------------------ */

/* search(q): {"q", "mode", "items": [{id, title, category, url, parts, snippet}]} */
static uint64_t fn_search(const char *args, size_t len) {
    gk_buf b = GK_BUF_INIT, raw = GK_BUF_INIT, q = GK_BUF_INIT;
    word_list words;
    int state;
    arg_text(args, len, "q", &raw);
    clean_text(str(&raw), raw.len, 0, &q);
    gk_buf_free(&raw);
    state = prepare_query(&q, SEARCH_WORDS, &words);
    if (state == Q_TOO_LONG) {
        gk_buf_free(&q);
        return gk_return_error("bad_input", "q is longer than 200 characters");
    }
    gk_json_object_begin(&b);
    gk_json_key(&b, "q");
    gk_json_string(&b, str(&q), q.len);
    gk_json_key(&b, "mode");
    gk_json_cstr(&b, search_mode());
    gk_buf_free(&q);
    if (state == Q_OK) {
        if (!search_items(&words, 0, SEARCH_LIMIT, &b)) {
            gk_buf_free(&b);
            return return_error();
        }
    } else {
        gk_json_key(&b, "items");
        gk_json_raw(&b, "[]", 2);
    }
    gk_json_object_end(&b);
    return gk_return_buf(&b);
}

/* faq_suggest(text): up to 3 published articles sharing significant words
 * with text (any of them; more shared words rank higher). */
static uint64_t fn_suggest(const char *args, size_t len) {
    gk_buf b = GK_BUF_INIT, text = GK_BUF_INIT;
    word_list words;
    arg_text(args, len, "text", &text);
    split_words(str(&text), text.len < SUGGEST_SCAN ? text.len : SUGGEST_SCAN, SUGGEST_WORDS, 1,
                &words);
    gk_buf_free(&text);
    gk_json_object_begin(&b);
    if (words.n) {
        if (!search_items(&words, 1, SUGGEST_LIMIT, &b)) {
            gk_buf_free(&b);
            return return_error();
        }
    } else {
        gk_json_key(&b, "items");
        gk_json_raw(&b, "[]", 2);
    }
    gk_json_object_end(&b);
    return gk_return_buf(&b);
}

/* save_article({id?, title, body, category, published?}): category is an id
 * (number) or a name (string). Returns {"id", "created"}. */
static uint64_t fn_save_article(const char *args, size_t len) {
    article_input in = {0, GK_BUF_INIT, GK_BUF_INIT, 0, 0, 0, 0};
    gk_buf raw = GK_BUF_INIT, b = GK_BUF_INIT;
    problems probs;
    gk_slice v;
    int64_t id = 0;
    int n, r, type;
    uint64_t result;
    type = gk_json_find(args, len, "id", &v);
    if (type > GK_JSON_NULL && !arg_id(args, len, "id", &in.id))
        return gk_return_error("bad_input", "id must be a positive integer");
    arg_text(args, len, "title", &raw);
    clean_text(str(&raw), raw.len, 0, &in.title);
    arg_text(args, len, "body", &raw);
    clean_text(str(&raw), raw.len, 1, &in.body);
    type = gk_json_find(args, len, "category", &v);
    if (type == GK_JSON_NUMBER) {
        in.category_given = 1;
        if (!gk_json_get_int(args, len, "category", &in.category_id)) in.category_id = 0;
    } else if (type == GK_JSON_STRING) {
        gk_buf name = GK_BUF_INIT;
        in.category_given = 1;
        arg_text(args, len, "category", &raw);
        clean_text(str(&raw), raw.len, 0, &name);
        r = category_by_name(&name, &in.category_id);
        gk_buf_free(&name);
        if (r < 0) {
            gk_buf_free(&raw);
            input_free(&in);
            return return_error();
        }
        if (r == 0) in.category_id = 0;
    }
    gk_buf_free(&raw);
    in.published_given = arg_flag(args, len, "published", &in.published);
    if (!in.published_given) in.published = 0;
    n = validate(&in, &probs);
    if (n < 0) result = return_error();
    else if (n > 0) {
        int i;
        for (i = 0; i < probs.n; i++) {
            if (i) LIT(&b, "; ");
            gk_buf_append_cstr(&b, probs.message[i]);
        }
        result = gk_return_error("bad_input", str(&b));
    } else {
        r = store_article(&in, &id);
        if (r < 0) result = return_error();
        else if (r == 0) result = gk_return_error("not_found", "no article with that id");
        else {
            gk_json_object_begin(&b);
            gk_json_key(&b, "id");
            gk_json_int(&b, id);
            gk_json_key(&b, "created");
            gk_json_bool(&b, in.id == 0);
            gk_json_object_end(&b);
            result = gk_return_buf(&b);
        }
    }
    gk_buf_free(&b);
    input_free(&in);
    return result;
}

/* save_category({name, position?}): {"id", "created"}; an existing name
 * gives its id and created false. */
static uint64_t fn_save_category(const char *args, size_t len) {
    gk_buf raw = GK_BUF_INIT, name = GK_BUF_INIT, b = GK_BUF_INIT;
    const char *message = "";
    int64_t id = 0, position = 0;
    int r, has_position;
    arg_text(args, len, "name", &raw);
    clean_text(str(&raw), raw.len, 0, &name);
    gk_buf_free(&raw);
    if (category_problem(&name, &message)) {
        gk_buf_free(&name);
        return gk_return_error("bad_input", message);
    }
    has_position = gk_json_get_int(args, len, "position", &position);
    r = store_category(&name, position, has_position, &id);
    gk_buf_free(&name);
    if (r < 0) return return_error();
    gk_json_object_begin(&b);
    gk_json_key(&b, "id");
    gk_json_int(&b, id);
    gk_json_key(&b, "created");
    gk_json_bool(&b, r == 1);
    gk_json_object_end(&b);
    return gk_return_buf(&b);
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                 */
/* ------------------------------------------------------------------------ */

uint64_t gk_call(const char *fn, size_t fn_len, const char *args, size_t args_len) {
    if (!args || args_len == 0) {
        args = "{}";
        args_len = 2;
    }
    if (!ensure_schema()) return return_error();
    if (gk_fn_is(fn, fn_len, "faq_suggest")) return fn_suggest(args, args_len);
    if (gk_fn_is(fn, fn_len, "search")) return fn_search(args, args_len);
    if (gk_fn_is(fn, fn_len, "save_article")) return fn_save_article(args, args_len);
    if (gk_fn_is(fn, fn_len, "save_category")) return fn_save_category(args, args_len);
    if (gk_fn_is(fn, fn_len, "page_portal")) return fn_portal();
    if (gk_fn_is(fn, fn_len, "page_search")) return fn_search_page(args, args_len);
    if (gk_fn_is(fn, fn_len, "page_article")) return fn_article_page(args, args_len);
    if (gk_fn_is(fn, fn_len, "page_manage")) return manage_page(NULL, NULL);
    if (gk_fn_is(fn, fn_len, "page_new")) return fn_new_page();
    if (gk_fn_is(fn, fn_len, "page_create")) return fn_save_page(args, args_len, 0);
    if (gk_fn_is(fn, fn_len, "page_edit")) return fn_edit_page(args, args_len);
    if (gk_fn_is(fn, fn_len, "page_update")) return fn_save_page(args, args_len, 1);
    if (gk_fn_is(fn, fn_len, "page_publish")) return fn_publish_page(args, args_len);
    if (gk_fn_is(fn, fn_len, "page_delete")) return fn_delete_page(args, args_len);
    if (gk_fn_is(fn, fn_len, "page_category")) return fn_category_page(args, args_len);
    return gk_return_error("unknown_function", "faq has no such function");
}
