/*
 * hello-wasm: the example plugin for the goatkit_asgi C SDK.
 *
 * It exercises each part of the ABI once, so it doubles as the runtime's
 * test subject: plain calls, logging, host calls (cache, config, a failing
 * one), error results, a trap, large results, WASI stdout, a route handler
 * and a hook. Build with ./build.sh.
 */
#include <stdio.h>

#include "goatkit.h"

/* Static: the host reads the registration once and never frees it. */
static const char REGISTRATION[] =
    "{"
    "\"name\":\"hello-wasm\","
    "\"version\":\"1.0.0\","
    "\"description\":\"Example C plugin: greetings, echo, cache and config round trips\","
    "\"author\":\"goatkit_asgi contributors\","
    "\"license\":\"Apache-2.0\","
    "\"functions\":["
    "{\"name\":\"hello\",\"args\":[\"name\"],\"returns\":\"object\","
    "\"description\":\"Greets name (default World) and logs the greeting\"},"
    "{\"name\":\"echo\",\"args\":[],\"returns\":\"any\","
    "\"description\":\"Returns its arguments unchanged (null when there are none)\"},"
    "{\"name\":\"cache_roundtrip\",\"args\":[\"key\",\"value\"],\"returns\":\"object\","
    "\"description\":\"Stores value under key in the cache and reads it back\"},"
    "{\"name\":\"config\",\"args\":[\"key\"],\"returns\":\"any\","
    "\"description\":\"Returns the host's config_get answer for key\"},"
    "{\"name\":\"host_fail\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"Calls a host function that does not exist and reports the error\"},"
    "{\"name\":\"fail\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"Always fails with the error code bad_input\"},"
    "{\"name\":\"trap\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"Traps (wasm unreachable)\"},"
    "{\"name\":\"big\",\"args\":[\"n\"],\"returns\":\"object\","
    "\"description\":\"Returns a string of n x characters\"},"
    "{\"name\":\"hello_route\",\"args\":[\"name\"],\"returns\":\"object\","
    "\"description\":\"Route handler for GET /hello/{name}\"},"
    "{\"name\":\"after_save\",\"args\":[\"entity\"],\"returns\":\"object\","
    "\"description\":\"Hook: reports the saved entity\"},"
    "{\"name\":\"stdout\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"Writes a line to WASI stdout\"}"
    "],"
    "\"hooks\":[\"after_save\"],"
    "\"routes\":[{\"method\":\"GET\",\"path\":\"/hello/{name}\",\"handler\":\"hello_route\","
    "\"description\":\"Greets name as an HTML page\"}],"
    "\"menu_items\":[{\"id\":\"hello-wasm\",\"label\":\"Hello\",\"path\":\"/hello/World\","
    "\"icon\":\"hand-wave\",\"location\":\"main\",\"order\":100}]"
    "}";

uint64_t gk_register(void) { return gk_return_static(REGISTRATION); }

/* Reads string field `key`, or uses `fallback` when it is absent or not a
 * string; either way `out` ends up holding a usable C string. */
static void arg_string(const char *args, size_t len, const char *key, const char *fallback,
                       gk_buf *out) {
    if (!gk_json_get_string(args, len, key, out)) {
        gk_buf_reset(out);
        gk_buf_append_cstr(out, fallback);
    }
}

/* Turns the last failed host call into this call's error, keeping the
 * host's code and message so the caller sees why (e.g. a denied capability). */
static uint64_t return_host_error(void) {
    char *err;
    size_t len;
    gk_buf b = GK_BUF_INIT;
    if (!gk_last_error(&err, &len))
        return gk_return_error("host_error", "host call failed without an error report");
    if (gk_json_find(err, len, "code", NULL) == GK_JSON_INVALID) {
        gk_free(err);
        return gk_return_error("host_error", "host call failed with an unreadable error report");
    }
    gk_json_object_begin(&b);
    gk_json_key(&b, "error");
    gk_json_raw(&b, err, len);
    gk_json_object_end(&b);
    gk_free(err);
    return gk_return_buf(&b);
}

static uint64_t fn_hello(const char *args, size_t len) {
    gk_buf name = GK_BUF_INIT, msg = GK_BUF_INIT, out = GK_BUF_INIT;
    arg_string(args, len, "name", "World", &name);

    gk_buf_append_cstr(&msg, "greeting ");
    gk_buf_append(&msg, name.data, name.len);
    gk_log(GK_LOG_INFO, msg.data, msg.len);

    gk_buf_reset(&msg);
    gk_buf_append_cstr(&msg, "Hello, ");
    gk_buf_append(&msg, name.data, name.len);
    gk_buf_append_char(&msg, '!');
    gk_json_object_begin(&out);
    gk_json_key(&out, "message");
    gk_json_string(&out, msg.data, msg.len);
    gk_json_object_end(&out);

    gk_buf_free(&name);
    gk_buf_free(&msg);
    return gk_return_buf(&out);
}

static uint64_t fn_echo(const char *args, size_t len) {
    /* A copy, not the input pointer: the host frees inputs and result apart. */
    return len ? gk_return_json(args, len) : gk_return_cstr("null");
}

static uint64_t fn_cache_roundtrip(const char *args, size_t len) {
    gk_buf key = GK_BUF_INIT, value = GK_BUF_INIT, got = GK_BUF_INIT, out = GK_BUF_INIT;
    int found;
    if (!gk_json_get_string(args, len, "key", &key) ||
        !gk_json_get_string(args, len, "value", &value)) {
        gk_buf_free(&key);
        gk_buf_free(&value);
        return gk_return_error("bad_input", "cache_roundtrip needs string fields key and value");
    }
    if (!gk_cache_set(key.data, value.data, value.len, 60) ||
        !gk_cache_get(key.data, &got, &found)) {
        gk_buf_free(&key);
        gk_buf_free(&value);
        gk_buf_free(&got);
        return return_host_error();
    }
    gk_json_object_begin(&out);
    gk_json_key(&out, "value");
    if (found) gk_json_string(&out, got.data, got.len);
    else gk_json_null(&out);
    gk_json_key(&out, "found");
    gk_json_bool(&out, found);
    gk_json_object_end(&out);
    gk_buf_free(&key);
    gk_buf_free(&value);
    gk_buf_free(&got);
    return gk_return_buf(&out);
}

static uint64_t fn_config(const char *args, size_t len) {
    gk_buf key = GK_BUF_INIT, result = GK_BUF_INIT;
    int ok;
    if (!gk_json_get_string(args, len, "key", &key)) {
        gk_buf_free(&key);
        return gk_return_error("bad_input", "config needs a string field key");
    }
    ok = gk_config_get(key.data, &result);
    gk_buf_free(&key);
    if (!ok) {
        gk_buf_free(&result);
        return return_host_error();
    }
    return gk_return_buf(&result);
}

static uint64_t fn_host_fail(void) {
    char *res, *err;
    size_t res_len, err_len;
    int ok = gk_host_call_json("no_such_fn", "{}", &res, &res_len);
    gk_buf out = GK_BUF_INIT;
    if (ok) gk_free(res);
    gk_json_object_begin(&out);
    gk_json_key(&out, "failed");
    gk_json_bool(&out, !ok);
    gk_json_key(&out, "last_error");
    if (gk_last_error(&err, &err_len)) {
        gk_json_raw(&out, err, err_len);
        gk_free(err);
    } else
        gk_json_null(&out);
    gk_json_object_end(&out);
    return gk_return_buf(&out);
}

static uint64_t fn_big(const char *args, size_t len) {
    static const char head[] = "{\"data\":\"", tail[] = "\"}";
    gk_buf out = GK_BUF_INIT;
    int64_t n;
    char *fill;
    if (!gk_json_get_int(args, len, "n", &n) || n < 0)
        return gk_return_error("bad_input", "big needs a non-negative integer field n");
    if ((uint64_t)n > SIZE_MAX - 64) __builtin_trap(); /* cannot exist in wasm32 memory */
    /* One allocation of the final size: the result is handed over as is. */
    if (!gk_buf_reserve(&out, sizeof head + (size_t)n + sizeof tail)) __builtin_trap();
    gk_buf_append(&out, head, sizeof head - 1);
    fill = gk_buf_extend(&out, (size_t)n);
    if (fill) memset(fill, 'x', (size_t)n);
    gk_buf_append(&out, tail, sizeof tail - 1);
    return gk_return_buf(&out);
}

static uint64_t fn_hello_route(const char *args, size_t len) {
    gk_buf name = GK_BUF_INIT, html = GK_BUF_INIT, out = GK_BUF_INIT;
    arg_string(args, len, "name", "World", &name);
    gk_buf_append_cstr(&html, "<p>Hello, ");
    gk_buf_append_html(&html, name.data, name.len);
    gk_buf_append_cstr(&html, "</p>");
    gk_json_object_begin(&out);
    gk_json_key(&out, "html");
    gk_json_string(&out, html.data, html.len);
    gk_json_object_end(&out);
    gk_buf_free(&name);
    gk_buf_free(&html);
    return gk_return_buf(&out);
}

static uint64_t fn_after_save(const char *args, size_t len) {
    gk_buf out = GK_BUF_INIT;
    gk_slice entity;
    int type = gk_json_find(args, len, "entity", &entity);
    gk_json_object_begin(&out);
    gk_json_key(&out, "seen");
    if (type > GK_JSON_MISSING) gk_json_raw(&out, entity.ptr, entity.len);
    else gk_json_null(&out);
    gk_json_object_end(&out);
    return gk_return_buf(&out);
}

static uint64_t fn_stdout(void) {
    puts("to stdout");
    /* wasi-libc buffers stdout when it is not a terminal; a reactor never
     * exits, so nothing else would flush it. */
    fflush(stdout);
    return gk_return_cstr("{\"ok\":true}");
}

static uint64_t unknown_function(const char *fn, size_t fn_len) {
    gk_buf msg = GK_BUF_INIT;
    uint64_t r;
    gk_buf_append_cstr(&msg, "hello-wasm has no function ");
    gk_buf_append(&msg, fn, fn_len);
    r = gk_return_error("unknown_function", msg.oom ? "hello-wasm has no such function" : msg.data);
    gk_buf_free(&msg);
    return r;
}

uint64_t gk_call(const char *fn, size_t fn_len, const char *args, size_t args_len) {
    if (gk_fn_is(fn, fn_len, "hello")) return fn_hello(args, args_len);
    if (gk_fn_is(fn, fn_len, "echo")) return fn_echo(args, args_len);
    if (gk_fn_is(fn, fn_len, "cache_roundtrip")) return fn_cache_roundtrip(args, args_len);
    if (gk_fn_is(fn, fn_len, "config")) return fn_config(args, args_len);
    if (gk_fn_is(fn, fn_len, "host_fail")) return fn_host_fail();
    if (gk_fn_is(fn, fn_len, "fail")) return gk_return_error("bad_input", "something was wrong");
    if (gk_fn_is(fn, fn_len, "trap")) __builtin_trap();
    if (gk_fn_is(fn, fn_len, "big")) return fn_big(args, args_len);
    if (gk_fn_is(fn, fn_len, "hello_route")) return fn_hello_route(args, args_len);
    if (gk_fn_is(fn, fn_len, "after_save")) return fn_after_save(args, args_len);
    if (gk_fn_is(fn, fn_len, "stdout")) return fn_stdout();
    return unknown_function(fn, fn_len);
}
