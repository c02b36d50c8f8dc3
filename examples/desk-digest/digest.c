/*
 * desk-digest: a helpdesk digest, built on the granted host API.
 *
 * It touches each capability a plugin can be granted at least once: it
 * reads the host's `tickets` table (db_query), fetches a status document
 * over HTTP (http_request), mails the digest (send_email), runs on a
 * schedule and adds schedules at run time (schedule_job), and keeps the
 * result in its cache for 30 seconds (cache_get / cache_set, always allowed).
 * A host call that is refused or fails is reported inside the digest, never
 * hidden. Build with ./build.sh.
 */
#include "goatkit.h"

/* Static: the host reads the registration once and never frees it. */
static const char REGISTRATION[] =
    "{"
    "\"name\":\"desk-digest\","
    "\"version\":\"1.0.0\","
    "\"description\":\"Helpdesk digest: ticket counts by state and a service status, "
    "as JSON, a page and a scheduled email\","
    "\"author\":\"goatkit_asgi contributors\","
    "\"license\":\"Apache-2.0\","
    "\"functions\":["
    "{\"name\":\"digest\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"Ticket counts by state, open tickets and the service status "
    "(cached for 30 s)\"},"
    "{\"name\":\"digest_page\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"Route handler for GET /digest: the digest as an HTML table\"},"
    "{\"name\":\"send_digest\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"Job handler: mails a fresh digest to the digest_to address\"},"
    "{\"name\":\"schedule\",\"args\":[\"cron\"],\"returns\":\"object\","
    "\"description\":\"Schedules send_digest as the job extra-digest on cron\"}"
    "],"
    "\"routes\":[{\"method\":\"GET\",\"path\":\"/digest\",\"handler\":\"digest_page\","
    "\"description\":\"The helpdesk digest as a page\"}],"
    "\"menu_items\":[{\"id\":\"desk-digest\",\"label\":\"Digest\",\"path\":\"/digest\","
    "\"icon\":\"mail\",\"location\":\"main\",\"order\":110}],"
    "\"jobs\":[{\"id\":\"daily-digest\",\"handler\":\"send_digest\",\"schedule\":\"0 7 * * *\","
    "\"enabled\":true,\"description\":\"Mails the digest every day at 07:00 UTC\"}]"
    "}";

uint64_t gk_register(void) { return gk_return_static(REGISTRATION); }

#define CACHE_KEY "digest"
#define CACHE_TTL 30
#define MAX_STATUS_BODY 4096

/* Appends a JSON string literal written in the source as the next value. */
#define JSON_LIT(b, lit) gk_json_raw((b), (lit), sizeof(lit) - 1)

static const char COUNTS_QUERY[] =
    "{\"query\":\"SELECT state, COUNT(*) AS n FROM tickets GROUP BY state ORDER BY state\","
    "\"args\":[]}";

/* ------------------------------------------------------------------------ */
/* Host errors                                                              */
/* ------------------------------------------------------------------------ */

/* Appends the last failed host call's {"code","message"} as the next value,
 * or a stand-in when the host gave no readable report. */
static void append_last_error(gk_buf *b) {
    char *err;
    size_t len;
    if (gk_last_error(&err, &len)) {
        int type = gk_json_find(err, len, "code", NULL);
        if (type == GK_JSON_STRING) gk_json_raw(b, err, len);
        gk_free(err);
        if (type == GK_JSON_STRING) return;
    }
    JSON_LIT(b, "{\"code\":\"host_error\",\"message\":\"a host call failed\"}");
}

/* Returns an error result carrying the code and message of the error object
 * err (raw JSON, as append_last_error writes it). */
static uint64_t return_error_object(const char *err, size_t len) {
    gk_buf code = GK_BUF_INIT, message = GK_BUF_INIT;
    uint64_t r;
    if (!gk_json_get_string(err, len, "code", &code)) {
        gk_buf_reset(&code);
        gk_buf_append_cstr(&code, "host_error");
    }
    if (!gk_json_get_string(err, len, "message", &message)) {
        gk_buf_reset(&message);
        gk_buf_append_cstr(&message, "a host call failed");
    }
    r = gk_return_error(code.data, message.data);
    gk_buf_free(&code);
    gk_buf_free(&message);
    return r;
}

/* Returns the last failed host call as this call's error (same code). */
static uint64_t return_last_error(void) {
    gk_buf err = GK_BUF_INIT;
    uint64_t r;
    append_last_error(&err);
    r = return_error_object(err.data, err.len);
    gk_buf_free(&err);
    return r;
}

/* Logs "desk-digest: <what> failed: <code>" at warn level. */
static void log_failure(const char *what, const char *err, size_t len) {
    gk_buf msg = GK_BUF_INIT, code = GK_BUF_INIT;
    gk_json_get_string(err, len, "code", &code);
    gk_buf_append_cstr(&msg, what);
    gk_buf_append_cstr(&msg, " failed: ");
    gk_buf_append(&msg, code.data, code.len);
    if (!msg.oom) gk_log(GK_LOG_WARN, msg.data, msg.len);
    gk_buf_free(&msg);
    gk_buf_free(&code);
}

/* ------------------------------------------------------------------------ */
/* Building the digest                                                      */
/* ------------------------------------------------------------------------ */

/* Turns db_query's rows ([{"state", "n"}, ...], or null for none) into the
 * members "counts" and "open" of out. Returns 0 if rows are not rows. */
static int append_counts(gk_buf *out, const char *rows, size_t len) {
    gk_buf counts = GK_BUF_INIT, state = GK_BUF_INIT;
    gk_json_iter it;
    gk_slice key, row;
    int type, ok = 1;
    int64_t open = 0;
    const char *p = gk__json_ws(rows, rows + len);
    gk_json_object_begin(&counts);
    if ((size_t)(rows + len - p) >= 4 && memcmp(p, "null", 4) == 0) {
        /* GoatKit's answer for zero rows: no tickets at all. */
    } else if (gk_json_iter_begin(&it, rows, len, '[')) {
        while (gk_json_iter_next(&it, &key, &row, &type)) {
            int64_t n;
            if (type != GK_JSON_OBJECT || !gk_json_get_int(row.ptr, row.len, "n", &n)) {
                ok = 0;
                break;
            }
            /* A NULL state (a table without NOT NULL) still counts. */
            if (!gk_json_get_string(row.ptr, row.len, "state", &state)) {
                gk_buf_reset(&state);
                gk_buf_append_cstr(&state, "(none)");
            }
            gk_json_key(&counts, state.data);
            gk_json_int(&counts, n);
            if (strcmp(state.data, "closed") != 0) open += n;
        }
    } else
        ok = 0;
    gk_json_object_end(&counts);
    if (ok) {
        gk_json_key(out, "counts");
        gk_json_raw(out, counts.data, counts.len);
        gk_json_key(out, "open");
        gk_json_int(out, open);
    }
    gk_buf_free(&counts);
    gk_buf_free(&state);
    return ok;
}

/* Writes "status": {"url", "code", "body"} for the GET of url; returns 0 and
 * writes nothing when the request failed. */
static int append_status(gk_buf *out, const gk_buf *url) {
    gk_buf args = GK_BUF_INIT, res = GK_BUF_INIT, b64 = GK_BUF_INIT, body = GK_BUF_INIT;
    int64_t code;
    int ok;
    gk_json_object_begin(&args);
    gk_json_key(&args, "method");
    gk_json_cstr(&args, "GET");
    gk_json_key(&args, "url");
    gk_json_string(&args, url->data, url->len);
    gk_json_key(&args, "headers");
    gk_json_object_begin(&args);
    gk_json_key(&args, "Accept");
    gk_json_cstr(&args, "application/json");
    gk_json_object_end(&args);
    gk_json_object_end(&args);
    ok = !args.oom && gk_host_call("http_request", args.data, args.len, &res);
    if (ok) {
        /* No body is an empty body; a body that is not base64 is the host's fault. */
        if (!gk_json_get_string(res.data, res.len, "body", &b64)) gk_buf_reset(&b64);
        ok = gk_json_get_int(res.data, res.len, "status", &code) &&
             gk_base64_decode(b64.data ? b64.data : "", b64.len, &body);
        if (ok) {
            gk_json_key(out, "status");
            gk_json_object_begin(out);
            gk_json_key(out, "url");
            gk_json_string(out, url->data, url->len);
            gk_json_key(out, "code");
            gk_json_int(out, code);
            gk_json_key(out, "body");
            /* A cut inside a UTF-8 sequence becomes U+FFFD in the JSON. */
            gk_json_string(out, body.data ? body.data : "",
                           body.len > MAX_STATUS_BODY ? MAX_STATUS_BODY : body.len);
            gk_json_object_end(out);
        }
    }
    gk_buf_free(&args);
    gk_buf_free(&res);
    gk_buf_free(&b64);
    gk_buf_free(&body);
    return ok;
}

/* Reads config `key` as a string into value. Returns 1 if it is set. */
static int config_string(const char *key, gk_buf *value) {
    gk_buf res = GK_BUF_INIT;
    int ok = gk_config_get(key, &res) && gk_json_get_string(res.data, res.len, "value", value);
    gk_buf_free(&res);
    return ok;
}

/* Builds a fresh digest object (without "cached") into out:
 *   {"counts": {state: n}, "open": n, "status": {"url", "code", "body"}}
 * with "counts" and "open" null plus "counts_error": {"code", "message"}
 * when the database could not be read, and "status" null plus
 * "status_error" when the status could not be fetched. Returns 1 when both
 * parts worked (only such a digest is worth caching). */
static int build_digest(gk_buf *out) {
    gk_buf rows = GK_BUF_INIT, url = GK_BUF_INIT, err = GK_BUF_INIT;
    int counts_ok, status_ok;

    gk_json_object_begin(out);

    counts_ok = gk_host_call("db_query", COUNTS_QUERY, sizeof COUNTS_QUERY - 1, &rows);
    if (!counts_ok) append_last_error(&err);
    else if (!append_counts(out, rows.data, rows.len)) {
        counts_ok = 0;
        JSON_LIT(&err, "{\"code\":\"bad_result\",\"message\":\"db_query did not return rows\"}");
    }
    if (!counts_ok) {
        log_failure("reading ticket counts", err.data, err.len);
        gk_json_key(out, "counts");
        gk_json_null(out);
        gk_json_key(out, "open");
        gk_json_null(out);
        gk_json_key(out, "counts_error");
        gk_json_raw(out, err.data, err.len);
    }

    gk_buf_reset(&err);
    if (!config_string("status_url", &url)) {
        status_ok = 0;
        JSON_LIT(&err, "{\"code\":\"not_configured\",\"message\":\"status_url is not set\"}");
    } else if (!(status_ok = append_status(out, &url)))
        append_last_error(&err);
    if (!status_ok) {
        log_failure("fetching the status", err.data, err.len);
        gk_json_key(out, "status");
        gk_json_null(out);
        gk_json_key(out, "status_error");
        gk_json_raw(out, err.data, err.len);
    }

    gk_json_object_end(out);
    gk_buf_free(&rows);
    gk_buf_free(&url);
    gk_buf_free(&err);
    return counts_ok && status_ok;
}

/* Adds "cached": flag to the complete object in b. */
static void mark_cached(gk_buf *b, int cached) {
    while (b->len > 0 && b->data[b->len - 1] != '}') b->len--;
    if (b->len > 0) b->data[--b->len] = '\0';
    gk_json_key(b, "cached");
    gk_json_bool(b, cached);
    gk_json_object_end(b);
}

/* The digest with "cached" into out: from the cache when use_cache is set
 * and it holds one, else built fresh (and cached when use_cache is set and
 * nothing failed). */
static void get_digest(gk_buf *out, int use_cache) {
    int found = 0;
    gk_buf_reset(out);
    if (use_cache && gk_cache_get(CACHE_KEY, out, &found) && found &&
        gk_json_find(out->data, out->len, "counts", NULL) == GK_JSON_OBJECT) {
        mark_cached(out, 1);
        return;
    }
    gk_buf_reset(out);
    if (build_digest(out) && use_cache && !out->oom &&
        !gk_cache_set(CACHE_KEY, out->data, out->len, CACHE_TTL))
        gk_log_warn("could not cache the digest");
    mark_cached(out, 0);
}

/* ------------------------------------------------------------------------ */
/* Rendering                                                                */
/* ------------------------------------------------------------------------ */

/* Appends the decoded JSON string raw (or raw itself if it is not a string),
 * HTML-escaped when html is set. */
static void append_value(gk_buf *b, const char *raw, size_t len, int html) {
    gk_buf text = GK_BUF_INIT;
    if (len < 2 || raw[0] != '"' || !gk_json_decode_string(raw, len, &text)) {
        gk_buf_reset(&text);
        gk_buf_append(&text, raw, len);
    }
    if (html) gk_buf_append_html(b, text.data ? text.data : "", text.len);
    else gk_buf_append(b, text.data, text.len);
    gk_buf_free(&text);
}

/* Appends field `key` of the object json as text (nothing if absent). */
static void append_field(gk_buf *b, const char *json, size_t len, const char *key, int html) {
    gk_slice v;
    if (gk_json_find(json, len, key, &v) > GK_JSON_NULL) append_value(b, v.ptr, v.len, html);
}

/* "code (message)" of the error object field `key` of digest d. */
static void append_error(gk_buf *b, const gk_buf *d, const char *key, int html) {
    gk_slice e;
    if (gk_json_find(d->data, d->len, key, &e) != GK_JSON_OBJECT) return;
    append_field(b, e.ptr, e.len, "code", html);
    gk_buf_append_cstr(b, " (");
    append_field(b, e.ptr, e.len, "message", html);
    gk_buf_append_char(b, ')');
}

/* The digest d as an HTML fragment for the host layout. */
static void render_html(gk_buf *b, const gk_buf *d) {
    gk_slice counts, status, key, value;
    gk_json_iter it;
    int type, cached = 0;
    gk_buf_append_cstr(b, "<section class=\"card desk-digest\">\n<h1>Helpdesk digest</h1>\n");
    if (gk_json_find(d->data, d->len, "counts", &counts) == GK_JSON_OBJECT &&
        gk_json_iter_begin(&it, counts.ptr, counts.len, '{')) {
        gk_buf_append_cstr(b, "<table class=\"digest-counts\">\n"
                              "<tr><th>State</th><th>Tickets</th></tr>\n");
        while (gk_json_iter_next(&it, &key, &value, &type)) {
            gk_buf_append_cstr(b, "<tr><td>");
            append_value(b, key.ptr, key.len, 1);
            gk_buf_append_cstr(b, "</td><td>");
            append_value(b, value.ptr, value.len, 1);
            gk_buf_append_cstr(b, "</td></tr>\n");
        }
        gk_buf_append_cstr(b, "<tr><th>Open (not closed)</th><th class=\"digest-open\">");
        append_field(b, d->data, d->len, "open", 1);
        gk_buf_append_cstr(b, "</th></tr>\n</table>\n");
    } else {
        gk_buf_append_cstr(b, "<p class=\"digest-error\">Ticket counts unavailable: ");
        append_error(b, d, "counts_error", 1);
        gk_buf_append_cstr(b, "</p>\n");
    }
    gk_buf_append_cstr(b, "<h2>Service status</h2>\n");
    if (gk_json_find(d->data, d->len, "status", &status) == GK_JSON_OBJECT) {
        gk_buf_append_cstr(b, "<p>GET <code>");
        append_field(b, status.ptr, status.len, "url", 1);
        gk_buf_append_cstr(b, "</code> answered <strong class=\"digest-status\">");
        append_field(b, status.ptr, status.len, "code", 1);
        gk_buf_append_cstr(b, "</strong></p>\n<pre>");
        append_field(b, status.ptr, status.len, "body", 1);
        gk_buf_append_cstr(b, "</pre>\n");
    } else {
        gk_buf_append_cstr(b, "<p class=\"digest-error\">Status unavailable: ");
        append_error(b, d, "status_error", 1);
        gk_buf_append_cstr(b, "</p>\n");
    }
    gk_json_get_bool(d->data, d->len, "cached", &cached);
    gk_buf_append_cstr(b, cached ? "<p class=\"muted\">From the cache (kept 30 s).</p>\n"
                                 : "<p class=\"muted\">Fresh.</p>\n");
    gk_buf_append_cstr(b, "</section>\n");
}

/* The digest d as the plain text of the email; counts must be present. */
static void render_text(gk_buf *b, const gk_buf *d) {
    gk_slice counts, status, key, value;
    gk_json_iter it;
    int type;
    gk_buf_append_cstr(b, "Helpdesk digest\n\nTickets by state:\n");
    if (gk_json_find(d->data, d->len, "counts", &counts) == GK_JSON_OBJECT &&
        gk_json_iter_begin(&it, counts.ptr, counts.len, '{')) {
        while (gk_json_iter_next(&it, &key, &value, &type)) {
            gk_buf_append_cstr(b, "  ");
            append_value(b, key.ptr, key.len, 0);
            gk_buf_append_cstr(b, ": ");
            append_value(b, value.ptr, value.len, 0);
            gk_buf_append_char(b, '\n');
        }
    }
    gk_buf_append_cstr(b, "Open (not closed): ");
    append_field(b, d->data, d->len, "open", 0);
    gk_buf_append_cstr(b, "\n\nService status: ");
    if (gk_json_find(d->data, d->len, "status", &status) == GK_JSON_OBJECT) {
        append_field(b, status.ptr, status.len, "code", 0);
        gk_buf_append_cstr(b, " from ");
        append_field(b, status.ptr, status.len, "url", 0);
        gk_buf_append_char(b, '\n');
        append_field(b, status.ptr, status.len, "body", 0);
        gk_buf_append_char(b, '\n');
    } else {
        gk_buf_append_cstr(b, "unavailable: ");
        append_error(b, d, "status_error", 0);
        gk_buf_append_char(b, '\n');
    }
}

/* ------------------------------------------------------------------------ */
/* Functions                                                                */
/* ------------------------------------------------------------------------ */

static uint64_t fn_digest(void) {
    gk_buf d = GK_BUF_INIT;
    get_digest(&d, 1);
    return gk_return_buf(&d);
}

static uint64_t fn_digest_page(void) {
    gk_buf d = GK_BUF_INIT, html = GK_BUF_INIT, out = GK_BUF_INIT;
    get_digest(&d, 1);
    render_html(&html, &d);
    gk_json_object_begin(&out);
    gk_json_key(&out, "title");
    gk_json_cstr(&out, "Digest");
    gk_json_key(&out, "html");
    gk_json_string(&out, html.data ? html.data : "", html.len);
    gk_json_object_end(&out);
    gk_buf_free(&d);
    gk_buf_free(&html);
    return gk_return_buf(&out);
}

static uint64_t fn_send_digest(void) {
    gk_buf d = GK_BUF_INIT, to = GK_BUF_INIT, subject = GK_BUF_INIT, body = GK_BUF_INIT,
           args = GK_BUF_INIT;
    gk_slice err;
    int ok;
    get_digest(&d, 0);
    /* Without the numbers there is nothing worth mailing: fail with the
     * database's error. A missing status is reported in the mail instead. */
    if (gk_json_find(d.data, d.len, "counts_error", &err) == GK_JSON_OBJECT) {
        uint64_t r = return_error_object(err.ptr, err.len);
        gk_buf_free(&d);
        return r;
    }
    if (!config_string("digest_to", &to)) {
        gk_buf_free(&d);
        gk_buf_free(&to);
        return gk_return_error("not_configured", "digest_to is not set");
    }
    gk_buf_append_cstr(&subject, "Helpdesk digest: ");
    append_field(&subject, d.data, d.len, "open", 0);
    gk_buf_append_cstr(&subject, " open");
    render_text(&body, &d);

    gk_json_object_begin(&args);
    gk_json_key(&args, "to");
    gk_json_string(&args, to.data, to.len);
    gk_json_key(&args, "subject");
    gk_json_string(&args, subject.data, subject.len);
    gk_json_key(&args, "body");
    gk_json_string(&args, body.data, body.len);
    gk_json_key(&args, "html");
    gk_json_bool(&args, 0);
    gk_json_object_end(&args);
    ok = !args.oom && gk_host_call_json_n("send_email", args.data, args.len, NULL, NULL);
    gk_buf_free(&d);
    gk_buf_free(&to);
    gk_buf_free(&subject);
    gk_buf_free(&body);
    gk_buf_free(&args);
    if (!ok) return return_last_error();
    gk_log_info("digest mailed");
    return gk_return_cstr("{\"sent\":true}");
}

static uint64_t fn_schedule(const char *args, size_t len) {
    gk_buf cron = GK_BUF_INIT, job = GK_BUF_INIT, res = GK_BUF_INIT;
    int ok;
    if (!gk_json_get_string(args, len, "cron", &cron) || cron.len == 0) {
        gk_buf_free(&cron);
        return gk_return_error("bad_input", "schedule needs a string field cron");
    }
    gk_json_object_begin(&job);
    gk_json_key(&job, "id");
    gk_json_cstr(&job, "extra-digest");
    gk_json_key(&job, "cron");
    gk_json_string(&job, cron.data, cron.len);
    gk_json_key(&job, "callback");
    gk_json_cstr(&job, "send_digest");
    gk_json_object_end(&job);
    ok = !job.oom && gk_host_call("schedule_job", job.data, job.len, &res);
    gk_buf_free(&cron);
    gk_buf_free(&job);
    if (!ok) {
        gk_buf_free(&res);
        return return_last_error();
    }
    return gk_return_buf(&res);
}

uint64_t gk_call(const char *fn, size_t fn_len, const char *args, size_t args_len) {
    if (gk_fn_is(fn, fn_len, "digest")) return fn_digest();
    if (gk_fn_is(fn, fn_len, "digest_page")) return fn_digest_page();
    if (gk_fn_is(fn, fn_len, "send_digest")) return fn_send_digest();
    if (gk_fn_is(fn, fn_len, "schedule")) return fn_schedule(args, args_len);
    return gk_return_error("unknown_function", "desk-digest has no such function");
}
