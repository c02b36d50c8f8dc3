/*
 * goatkit.h - C SDK for goatkit_asgi WebAssembly plugins (single header, C99).
 *
 * A plugin is a wasm32-wasi module that follows the GoatKit ABI: it exports
 * `memory`, `gk_malloc`, `gk_free`, `gk_register` and `gk_call`, and imports
 * `host_call`, `log` and (optionally) `last_error` from the module "gk".
 * Every value that crosses the boundary is UTF-8 JSON passed as (ptr, len);
 * a function returns one 64-bit value packing both: (ptr << 32) | len.
 *
 * Using it
 * --------
 *     #include "goatkit.h"
 *
 *     uint64_t gk_register(void) {
 *         return gk_return_static("{\"name\":\"my-plugin\",\"version\":\"1.0.0\"}");
 *     }
 *
 *     uint64_t gk_call(const char *fn, size_t fn_len,
 *                      const char *args, size_t args_len) {
 *         if (gk_fn_is(fn, fn_len, "ping")) return gk_return_cstr("{\"pong\":true}");
 *         return gk_return_error("unknown_function", "no such function");
 *     }
 *
 * Build (reactor model: the host calls `_initialize` once, then the exports):
 *     python -m ziglang cc --target=wasm32-wasi -O2 -mexec-model=reactor -s \
 *         -Wl,-z,stack-size=65536 -I <dir of this file> -o plugin.wasm plugin.c
 *
 * No linker export flags are needed: this header declares `gk_register`,
 * `gk_call`, `gk_malloc` and `gk_free` with `export_name` attributes, so the
 * plugin's definitions are exported under those names.
 *
 * What it offers
 * --------------
 * - packing: gk_pack, gk_unpack_ptr, gk_unpack_len, gk_fn_is
 * - gk_buf, a growable string: gk_buf_append*, gk_buf_extend, HTML escaping,
 *   base64 (gk_buf_append_base64, gk_base64_decode)
 * - JSON writing into a gk_buf: gk_json_object_begin/end, gk_json_key,
 *   gk_json_string/cstr/int/double/bool/null/raw (commas are automatic)
 * - JSON reading of top-level fields: gk_json_find, gk_json_get_string/int/
 *   double/bool, gk_json_decode_string; arrays and objects member by member:
 *   gk_json_iter_begin, gk_json_iter_next
 * - database: gk_sql_begin/gk_sql_end build a statement, gk_db_query and
 *   gk_db_exec run it, gk_db_dialect (SQLite or PostgreSQL)
 * - host: gk_host_call, gk_host_call_json, gk_last_error,
 *   gk_last_error_parts, gk_log*, gk_logf,
 *   gk_cache_set, gk_cache_get, gk_config_get
 * - results: gk_return_json/cstr/buf/error/empty/redirect, gk_return_static
 *
 * How the header is organised
 * ---------------------------
 * - Every helper is `static inline`: a helper the plugin does not call costs
 *   nothing in the module, and nothing has to be defined in a separate file.
 * - The host imports are plain declarations. A wasm import only appears in
 *   the module when the plugin uses it, so a plugin that never calls
 *   gk_last_error() does not import `last_error` (GoatKit's own host does not
 *   provide that extension).
 * - `gk_malloc` and `gk_free` are *defined* here, on top of the C library's
 *   malloc/free, because the host needs them in every plugin. If the plugin
 *   has several .c files, or brings its own allocator, define
 *   GK_NO_ALLOC_EXPORTS before including this header in every file but the
 *   one that defines them (or in all files, and define them yourself).
 *
 * Memory ownership
 * ----------------
 * - Inputs (function name and args) belong to the host, which frees them
 *   after gk_call returns: copy what you need to keep.
 * - A result returned from gk_call must come from gk_malloc (all gk_return_*
 *   helpers except gk_return_static do this); the host frees it with
 *   gk_free. The one exception the ABI allows is a result that points inside
 *   the input block (an echo can return its args as they are).
 * - gk_register's result is never freed: return static data
 *   (gk_return_static).
 * - Results of host_call and last_error are written by the host into blocks
 *   it gets from gk_malloc; they belong to the plugin, which frees them with
 *   gk_free (the wrappers below do that for you).
 * - The malloc of zig's wasm32-wasi libc hands out power-of-two size
 *   classes, so a block of n bytes can take up to 2n of the instance's
 *   memory cap: a plugin that builds one 9 MB result under a 16 MB cap runs
 *   out of memory.
 *
 * Errors
 * ------
 * A function reports failure by returning a JSON object whose only key is
 * "error", either {"error": "text"} or {"error": {"code": .., "message": ..}}
 * (gk_return_error). The host raises that as a call error.
 * If memory runs out while building a result, the gk_return_* helpers trap
 * (wasm `unreachable`): nothing useful can be returned without memory, and
 * the host discards an instance that trapped, so no half-built state leaks
 * into the next call.
 */
#ifndef GOATKIT_H
#define GOATKIT_H

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Off wasm the attributes mean nothing, so they are dropped: plugin logic can
 * then be compiled natively for unit tests, with the test providing the
 * host functions (gk_host_call_raw, gk_log_raw, gk_last_error_raw). */
#if defined(__wasm__)
#define GK_EXPORT(name) __attribute__((export_name(name)))
#define GK_IMPORT(name) __attribute__((import_module("gk"), import_name(name)))
#else
#define GK_EXPORT(name)
#define GK_IMPORT(name)
#endif

/* ------------------------------------------------------------------------ */
/* ABI: imports from module "gk"                                            */
/* ------------------------------------------------------------------------ */

/* Calls host function fn with JSON args; returns the packed JSON result,
 * which the plugin owns, or 0 on any error (then see gk_last_error_raw). */
GK_IMPORT("host_call")
int64_t gk_host_call_raw(const char *fn, size_t fn_len, const char *args, size_t args_len);

/* Writes one line to the plugin's log; level is one of GK_LOG_*. */
GK_IMPORT("log")
void gk_log_raw(int32_t level, const char *msg, size_t len);

/* goatkit_asgi extension: packed {"code","message"} JSON describing the last
 * failed host_call, or 0 if there was none. The plugin owns the block. */
GK_IMPORT("last_error")
int64_t gk_last_error_raw(void);

/* ------------------------------------------------------------------------ */
/* ABI: exports. The plugin defines gk_register and gk_call; this header    */
/* defines gk_malloc and gk_free unless GK_NO_ALLOC_EXPORTS is set.         */
/* ------------------------------------------------------------------------ */

/* Returns the packed registration JSON; the host never frees it. */
GK_EXPORT("gk_register") uint64_t gk_register(void);

/* Runs function fn (not NUL-terminated) with JSON args; args is NULL and
 * args_len 0 only when the caller passed no args at all. Returns the packed
 * JSON result, or 0 for an empty result. */
GK_EXPORT("gk_call")
uint64_t gk_call(const char *fn, size_t fn_len, const char *args, size_t args_len);

/* Allocates size bytes for the host; returns NULL (0) on failure. A request
 * for 0 bytes gets a valid, unique, non-NULL block (freed like any other),
 * so the host never has to special-case empty inputs. */
GK_EXPORT("gk_malloc") void *gk_malloc(size_t size);

/* Frees a block from gk_malloc; NULL is ignored. */
GK_EXPORT("gk_free") void gk_free(void *ptr);

#ifndef GK_NO_ALLOC_EXPORTS
void *gk_malloc(size_t size) { return malloc(size ? size : 1); }
void gk_free(void *ptr) { free(ptr); }
#endif

/* ------------------------------------------------------------------------ */
/* Packing                                                                  */
/* ------------------------------------------------------------------------ */

static inline uint64_t gk_pack(const void *ptr, size_t len) {
    return ((uint64_t)(uintptr_t)ptr << 32) | (uint64_t)(uint32_t)len;
}

static inline void *gk_unpack_ptr(uint64_t packed) {
    return (void *)(uintptr_t)(uint32_t)(packed >> 32);
}

static inline size_t gk_unpack_len(uint64_t packed) { return (size_t)(uint32_t)packed; }

/* True when fn (length fn_len, as gk_call receives it) equals name. */
static inline int gk_fn_is(const char *fn, size_t fn_len, const char *name) {
    size_t n = strlen(name);
    return fn_len == n && (n == 0 || memcmp(fn, name, n) == 0);
}

/* ------------------------------------------------------------------------ */
/* gk_buf: a growable byte string                                           */
/* ------------------------------------------------------------------------ */

/* data is NUL-terminated whenever it is non-NULL, so it can be used as a C
 * string (as long as the content has no NUL of its own). An allocation
 * failure sets `oom` and turns later appends into no-ops, so code can build
 * a whole document and check once at the end (gk_return_buf does). */
typedef struct gk_buf {
    char *data;
    size_t len;
    size_t cap;
    int oom;
} gk_buf;

#define GK_BUF_INIT {NULL, 0, 0, 0}

static inline void gk_buf_init(gk_buf *b) {
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = 0;
}

/* Releases the memory; the buffer can be used again afterwards. */
static inline void gk_buf_free(gk_buf *b) {
    free(b->data);
    gk_buf_init(b);
}

/* Empties the buffer but keeps its memory for reuse. */
static inline void gk_buf_reset(gk_buf *b) {
    b->len = 0;
    b->oom = 0;
    if (b->data) b->data[0] = '\0';
}

/* Makes room for `extra` more bytes (plus the NUL); returns 0 on failure. */
static inline int gk_buf_reserve(gk_buf *b, size_t extra) {
    size_t need, cap;
    char *p;
    if (b->oom) return 0;
    if (extra > SIZE_MAX - b->len - 1) {
        b->oom = 1;
        return 0;
    }
    need = b->len + extra + 1;
    if (need <= b->cap) return 1;
    /* Doubling keeps appends amortised O(1); a bigger request is taken as
     * it is, so a known final size costs exactly that much memory. */
    cap = b->cap > SIZE_MAX / 2 ? SIZE_MAX : b->cap * 2;
    if (cap < 64) cap = 64;
    if (cap < need) cap = need;
    p = (char *)realloc(b->data, cap);
    if (!p) {
        b->oom = 1;
        return 0;
    }
    if (!b->data) p[0] = '\0';
    b->data = p;
    b->cap = cap;
    return 1;
}

/* Appends n uninitialised bytes and returns where they start, for code that
 * writes bulk content itself; NULL if out of memory. */
static inline char *gk_buf_extend(gk_buf *b, size_t n) {
    char *start;
    if (!gk_buf_reserve(b, n)) return NULL;
    start = b->data + b->len;
    b->len += n;
    b->data[b->len] = '\0';
    return start;
}

static inline void gk_buf_append(gk_buf *b, const void *data, size_t n) {
    char *dst = gk_buf_extend(b, n);
    if (dst && n) memcpy(dst, data, n);
}

static inline void gk_buf_append_cstr(gk_buf *b, const char *s) {
    gk_buf_append(b, s, strlen(s));
}

static inline void gk_buf_append_char(gk_buf *b, char c) { gk_buf_append(b, &c, 1); }

/* Appends text escaped for HTML element content and quoted attributes. */
static inline void gk_buf_append_html(gk_buf *b, const char *s, size_t n) {
    size_t i, run = 0;
    for (i = 0; i < n; i++) {
        const char *rep;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: continue;
        }
        gk_buf_append(b, s + run, i - run);
        gk_buf_append_cstr(b, rep);
        run = i + 1;
    }
    gk_buf_append(b, s + run, n - run);
}

/* ------------------------------------------------------------------------ */
/* Base64 (standard alphabet, padded), used for byte fields in host calls   */
/* ------------------------------------------------------------------------ */

static inline void gk_buf_append_base64(gk_buf *b, const void *data, size_t n) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = (const unsigned char *)data;
    size_t i, groups = (n + 2) / 3;
    char *out;
    if (groups > (SIZE_MAX - 1) / 4) {
        b->oom = 1;
        return;
    }
    out = gk_buf_extend(b, groups * 4);
    if (!out) return;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8) | s[i + 2];
        *out++ = alphabet[(v >> 18) & 63];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n) v |= (uint32_t)s[i + 1] << 8;
        *out++ = alphabet[(v >> 18) & 63];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        *out++ = '=';
    }
}

/* Decodes base64 text (standard or URL-safe alphabet, padding optional) and
 * appends the bytes to out. Returns 1 on success, 0 on malformed input or
 * out of memory (out may then hold a partial result). */
static inline int gk_base64_decode(const char *s, size_t n, gk_buf *out) {
    uint32_t acc = 0;
    int bits = 0;
    size_t i, pad = 0;
    if (!gk_buf_reserve(out, n / 4 * 3 + 3)) return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int v;
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad) return 0; /* data after padding */
        if (c >= 'A' && c <= 'Z') v = c - 'A';
        else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
        else if (c >= '0' && c <= '9') v = c - '0' + 52;
        else if (c == '+' || c == '-') v = 62;
        else if (c == '/' || c == '_') v = 63;
        else return 0;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            gk_buf_append_char(out, (char)((acc >> bits) & 0xFF));
        }
    }
    /* A lone 6-bit group cannot encode a byte; more than two '=' never occur. */
    if (bits >= 6 || pad > 2) return 0;
    return !out->oom;
}

/* ------------------------------------------------------------------------ */
/* JSON writer                                                              */
/* ------------------------------------------------------------------------ */

/* The writers put the separating comma themselves: before a key or a value
 * they look at the last character written and add ',' unless it opens a
 * container or ends a key. So a document is written as a flat sequence of
 * begin/key/value/end calls with no bookkeeping. Mixing in raw text works
 * as long as the raw text is a complete value (or use gk_json_raw). */
static inline void gk__json_sep(gk_buf *b) {
    size_t i = b->len;
    char c;
    while (i > 0 && (b->data[i - 1] == ' ' || b->data[i - 1] == '\n' ||
                     b->data[i - 1] == '\t' || b->data[i - 1] == '\r'))
        i--;
    if (i == 0) return;
    c = b->data[i - 1];
    if (c != '{' && c != '[' && c != ',' && c != ':') gk_buf_append_char(b, ',');
}

static inline void gk_json_object_begin(gk_buf *b) {
    gk__json_sep(b);
    gk_buf_append_char(b, '{');
}

static inline void gk_json_object_end(gk_buf *b) { gk_buf_append_char(b, '}'); }

static inline void gk_json_array_begin(gk_buf *b) {
    gk__json_sep(b);
    gk_buf_append_char(b, '[');
}

static inline void gk_json_array_end(gk_buf *b) { gk_buf_append_char(b, ']'); }

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid.
 * Invalid input is replaced rather than passed on because the host's JSON
 * decoder rejects a whole document for one bad byte. */
static inline size_t gk__utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len, i;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

/* Appends s (n bytes of UTF-8) as a quoted, escaped JSON string. */
static inline void gk_json_string(gk_buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    gk__json_sep(b);
    gk_buf_append_char(b, '"');
    while (i < n) {
        unsigned char c = u[i];
        char esc[7];
        const char *rep = esc;
        size_t k;
        if (c == '"') rep = "\\\"";
        else if (c == '\\') rep = "\\\\";
        else if (c == '\n') rep = "\\n";
        else if (c == '\r') rep = "\\r";
        else if (c == '\t') rep = "\\t";
        else if (c == '\b') rep = "\\b";
        else if (c == '\f') rep = "\\f";
        else if (c < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            esc[6] = '\0';
        } else if (c < 0x80) {
            i++;
            continue;
        } else if ((k = gk__utf8_len(u + i, n - i)) != 0) {
            i += k;
            continue;
        } else
            rep = "\\ufffd";
        gk_buf_append(b, s + run, i - run);
        gk_buf_append_cstr(b, rep);
        run = ++i;
    }
    gk_buf_append(b, s + run, n - run);
    gk_buf_append_char(b, '"');
}

/* A NUL-terminated string as a JSON string; NULL becomes null. */
static inline void gk_json_cstr(gk_buf *b, const char *s) {
    if (!s) {
        gk__json_sep(b);
        gk_buf_append_cstr(b, "null");
        return;
    }
    gk_json_string(b, s, strlen(s));
}

/* Writes `"key":`; the next value call completes the member. */
static inline void gk_json_key(gk_buf *b, const char *key) {
    gk_json_cstr(b, key);
    gk_buf_append_char(b, ':');
}

static inline void gk_json_int(gk_buf *b, int64_t v) {
    char tmp[24];
    size_t i = sizeof tmp;
    /* Via unsigned so INT64_MIN negates without overflow. */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[--i] = '-';
    gk__json_sep(b);
    gk_buf_append(b, tmp + i, sizeof tmp - i);
}

/* The shortest of %.15g, %.16g and %.17g that reads back as the same
 * double, so 0.1 stays "0.1"; integral values keep a ".0" so they decode
 * as floats, not ints. JSON has no NaN or infinity: those become null. */
static inline void gk_json_double(gk_buf *b, double v) {
    char tmp[40];
    int n = 0, digits;
    if (!isfinite(v)) {
        gk__json_sep(b);
        gk_buf_append_cstr(b, "null");
        return;
    }
    for (digits = 15; digits <= 17; digits++) {
        n = snprintf(tmp, sizeof tmp, "%.*g", digits, v);
        if (strtod(tmp, NULL) == v) break;
    }
    if (n < 0 || (size_t)n >= sizeof tmp - 2) n = 0;
    if (strspn(tmp, "-0123456789") == (size_t)n) {
        tmp[n++] = '.';
        tmp[n++] = '0';
    }
    gk__json_sep(b);
    gk_buf_append(b, tmp, (size_t)n);
}

static inline void gk_json_bool(gk_buf *b, int v) {
    gk__json_sep(b);
    gk_buf_append_cstr(b, v ? "true" : "false");
}

static inline void gk_json_null(gk_buf *b) {
    gk__json_sep(b);
    gk_buf_append_cstr(b, "null");
}

/* Appends an already-encoded JSON value (e.g. a host result or a slice
 * found with gk_json_find) as the next value; n == 0 writes null. */
static inline void gk_json_raw(gk_buf *b, const char *json, size_t n) {
    if (n == 0) {
        gk_json_null(b);
        return;
    }
    gk__json_sep(b);
    gk_buf_append(b, json, n);
}

/* ------------------------------------------------------------------------ */
/* JSON reader: top-level fields of an object                               */
/* ------------------------------------------------------------------------ */

/* What gk_json_find reports. GK_JSON_MISSING is 0 so "not found" tests as
 * false; GK_JSON_INVALID means the input is not a well-formed object. */
enum {
    GK_JSON_INVALID = -1,
    GK_JSON_MISSING = 0,
    GK_JSON_NULL,
    GK_JSON_BOOL,
    GK_JSON_NUMBER,
    GK_JSON_STRING,
    GK_JSON_ARRAY,
    GK_JSON_OBJECT
};

/* A view into someone else's bytes (not NUL-terminated). */
typedef struct gk_slice {
    const char *ptr;
    size_t len;
} gk_slice;

static inline const char *gk__json_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* p is at an opening quote; returns the position after the closing one. */
static inline const char *gk__json_skip_string(const char *p, const char *end) {
    for (p++; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c == '\\') {
            if (++p >= end) return NULL;
        } else if (c < 0x20)
            return NULL;
    }
    return NULL;
}

/* p is at the first character of a value; returns the position after it
 * and its type. Nested containers are skipped by counting brackets outside
 * strings (their contents are not validated: the reader only needs to find
 * where they end). Iterative, so deep nesting cannot exhaust the stack. */
static inline const char *gk__json_skip_value(const char *p, const char *end, int *type) {
    if (p >= end) return NULL;
    switch (*p) {
    case '"':
        *type = GK_JSON_STRING;
        return gk__json_skip_string(p, end);
    case '{':
    case '[': {
        size_t depth = 0;
        *type = *p == '{' ? GK_JSON_OBJECT : GK_JSON_ARRAY;
        while (p < end) {
            char c = *p;
            if (c == '"') {
                p = gk__json_skip_string(p, end);
                if (!p) return NULL;
                continue;
            }
            if (c == '{' || c == '[') depth++;
            else if (c == '}' || c == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return NULL;
    }
    case 't':
        *type = GK_JSON_BOOL;
        return end - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f':
        *type = GK_JSON_BOOL;
        return end - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n':
        *type = GK_JSON_NULL;
        return end - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
    default: {
        const char *start = p;
        int digits = 0;
        *type = GK_JSON_NUMBER;
        while (p < end && *p && strchr("+-.eE0123456789", *p)) {
            if (*p >= '0' && *p <= '9') digits = 1;
            p++;
        }
        return digits && (*start == '-' || (*start >= '0' && *start <= '9')) ? p : NULL;
    }
    }
}

static inline int gk__hex4(const char *p, const char *end, uint32_t *out) {
    int i;
    uint32_t v = 0;
    if (end - p < 4) return 0;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* Decodes one character of a string body at *pp (before the closing quote)
 * into out as UTF-8 and advances *pp. Returns the byte count, 0 if
 * malformed. Unpaired surrogates become U+FFFD, as Python does on encode
 * with errors="replace". */
static inline int gk__json_str_char(const char **pp, const char *end, char out[4]) {
    const char *p = *pp;
    uint32_t cp;
    if (*p != '\\') {
        out[0] = *p;
        *pp = p + 1;
        return 1;
    }
    if (++p >= end) return 0;
    switch (*p) {
    case '"': out[0] = '"'; break;
    case '\\': out[0] = '\\'; break;
    case '/': out[0] = '/'; break;
    case 'b': out[0] = '\b'; break;
    case 'f': out[0] = '\f'; break;
    case 'n': out[0] = '\n'; break;
    case 'r': out[0] = '\r'; break;
    case 't': out[0] = '\t'; break;
    case 'u':
        if (!gk__hex4(p + 1, end, &cp)) return 0;
        p += 5;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            if (end - p >= 6 && p[0] == '\\' && p[1] == 'u' && gk__hex4(p + 2, end, &lo) &&
                lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            } else
                cp = 0xFFFD;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF)
            cp = 0xFFFD;
        *pp = p;
        if (cp < 0x80) {
            out[0] = (char)cp;
            return 1;
        }
        if (cp < 0x800) {
            out[0] = (char)(0xC0 | (cp >> 6));
            out[1] = (char)(0x80 | (cp & 0x3F));
            return 2;
        }
        if (cp < 0x10000) {
            out[0] = (char)(0xE0 | (cp >> 12));
            out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[2] = (char)(0x80 | (cp & 0x3F));
            return 3;
        }
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        return 4;
    default:
        return 0;
    }
    *pp = p + 1;
    return 1;
}

/* Whether the (escaped) string body [p, end) decodes to exactly key. */
static inline int gk__json_key_is(const char *p, const char *end, const char *key) {
    size_t klen = strlen(key), at = 0;
    while (p < end) {
        char ch[4];
        int n = gk__json_str_char(&p, end, ch);
        if (n == 0 || at + (size_t)n > klen || memcmp(key + at, ch, (size_t)n) != 0) return 0;
        at += (size_t)n;
    }
    return at == klen;
}

/* Looks up `key` among the top-level members of the JSON object in
 * json[0..len). Returns the value's type (GK_JSON_MISSING if absent,
 * GK_JSON_INVALID if the input is not an object) and, when found, the
 * value's raw JSON text in *value (may be NULL). A repeated key yields the
 * last occurrence, as Python's json module does on the host side. */
static inline int gk_json_find(const char *json, size_t len, const char *key, gk_slice *value) {
    const char *p, *end;
    int found = GK_JSON_MISSING;
    if (!json) return GK_JSON_INVALID;
    end = json + len;
    p = gk__json_ws(json, end);
    if (p >= end || *p != '{') return GK_JSON_INVALID;
    p = gk__json_ws(p + 1, end);
    if (p < end && *p == '}') return GK_JSON_MISSING;
    for (;;) {
        const char *kstart, *vstart;
        int match, type;
        if (p >= end || *p != '"') return GK_JSON_INVALID;
        kstart = p + 1;
        p = gk__json_skip_string(p, end);
        if (!p) return GK_JSON_INVALID;
        match = gk__json_key_is(kstart, p - 1, key);
        p = gk__json_ws(p, end);
        if (p >= end || *p != ':') return GK_JSON_INVALID;
        vstart = p = gk__json_ws(p + 1, end);
        p = gk__json_skip_value(p, end, &type);
        if (!p) return GK_JSON_INVALID;
        if (match) {
            found = type;
            if (value) {
                value->ptr = vstart;
                value->len = (size_t)(p - vstart);
            }
        }
        p = gk__json_ws(p, end);
        if (p < end && *p == ',') {
            p = gk__json_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}') return gk__json_ws(p + 1, end) == end ? found : GK_JSON_INVALID;
        return GK_JSON_INVALID;
    }
}

/* Decodes a JSON string literal (with its quotes) and appends the UTF-8
 * text to out. Returns 1 on success, 0 if malformed or out of memory. */
static inline int gk_json_decode_string(const char *raw, size_t n, gk_buf *out) {
    const char *p = raw, *end = raw + n;
    if (n < 2 || raw[0] != '"' || raw[n - 1] != '"') return 0;
    p++;
    end--;
    if (!gk_buf_reserve(out, n)) return 0; /* decoding never grows the text */
    while (p < end) {
        char ch[4];
        int k = gk__json_str_char(&p, end, ch);
        if (k == 0) return 0;
        gk_buf_append(out, ch, (size_t)k);
    }
    return !out->oom;
}

/* Top-level string field `key`, decoded into out (emptied first; data is
 * non-NULL and NUL-terminated on success). Returns 1 if the field exists
 * and is a string, 0 otherwise. */
static inline int gk_json_get_string(const char *json, size_t len, const char *key, gk_buf *out) {
    gk_slice v;
    gk_buf_reset(out);
    if (gk_json_find(json, len, key, &v) != GK_JSON_STRING) return 0;
    return gk_json_decode_string(v.ptr, v.len, out);
}

/* Parses a number's text with strtod, which needs a NUL-terminated copy. */
static inline int gk__json_number(const gk_slice *v, double *out) {
    char tmp[64];
    char *stop;
    if (v->len >= sizeof tmp) return 0;
    memcpy(tmp, v->ptr, v->len);
    tmp[v->len] = '\0';
    *out = strtod(tmp, &stop);
    return *stop == '\0' && isfinite(*out);
}

/* Top-level number field as a double. Returns 1 if present and numeric. */
static inline int gk_json_get_double(const char *json, size_t len, const char *key, double *out) {
    gk_slice v;
    if (gk_json_find(json, len, key, &v) != GK_JSON_NUMBER) return 0;
    return gk__json_number(&v, out);
}

/* Top-level number field as an integer. Accepts 42, -7 and also 42.0 or
 * 4.2e1 (Python may send integral floats); rejects fractions and values
 * outside int64. Returns 1 on success. */
static inline int gk_json_get_int(const char *json, size_t len, const char *key, int64_t *out) {
    gk_slice v;
    size_t i = 0;
    int neg = 0;
    uint64_t acc = 0;
    double d;
    if (gk_json_find(json, len, key, &v) != GK_JSON_NUMBER) return 0;
    if (v.ptr[0] == '-') {
        neg = 1;
        i = 1;
    }
    for (; i < v.len && v.ptr[i] >= '0' && v.ptr[i] <= '9'; i++) {
        unsigned digit = (unsigned)(v.ptr[i] - '0');
        if (acc > (UINT64_MAX - digit) / 10) break; /* too big: let strtod judge */
        acc = acc * 10 + digit;
    }
    if (i == v.len && i > (size_t)neg) {
        if (!neg && acc <= (uint64_t)INT64_MAX) {
            *out = (int64_t)acc;
            return 1;
        }
        if (neg && acc <= (uint64_t)INT64_MAX + 1) {
            *out = acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc;
            return 1;
        }
        return 0;
    }
    /* Range first: converting an out-of-range double to int64 is undefined. */
    if (!gk__json_number(&v, &d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0 ||
        (double)(int64_t)d != d)
        return 0;
    *out = (int64_t)d;
    return 1;
}

/* Top-level boolean field. Returns 1 if present and true or false. */
static inline int gk_json_get_bool(const char *json, size_t len, const char *key, int *out) {
    gk_slice v;
    if (gk_json_find(json, len, key, &v) != GK_JSON_BOOL) return 0;
    *out = v.ptr[0] == 't';
    return 1;
}

/* Walking arrays and objects member by member: db_query answers with an
 * array of row objects.
 *
 *     gk_json_iter it; gk_slice key, row; int type;
 *     if (gk_json_iter_begin(&it, rows, len, '[')) {
 *         while (gk_json_iter_next(&it, &key, &row, &type)) { ... }
 *     }
 */
typedef struct gk_json_iter {
    const char *p, *end;
    int is_object, first;
} gk_json_iter;

/* Starts walking json, which must be an array (open '[') or an object ('{').
 * Returns 0 when it is something else (db_query's `null` for zero rows too). */
static inline int gk_json_iter_begin(gk_json_iter *it, const char *json, size_t len, char open) {
    const char *end = json + len;
    const char *p = gk__json_ws(json, end);
    if (p >= end || *p != open) return 0;
    it->p = p + 1;
    it->end = end;
    it->is_object = open == '{';
    it->first = 1;
    return 1;
}

/* The next member: value gets its raw JSON text and type, and for an object
 * key gets the raw key literal (quotes included; key may be NULL for
 * arrays). Returns 0 at the end, or when the text is malformed. */
static inline int gk_json_iter_next(gk_json_iter *it, gk_slice *key, gk_slice *value,
                                    int *type) {
    const char *p = gk__json_ws(it->p, it->end), *start;
    if (p >= it->end || *p == (it->is_object ? '}' : ']')) return 0;
    if (!it->first) {
        if (*p != ',') return 0;
        p = gk__json_ws(p + 1, it->end);
    }
    it->first = 0;
    if (it->is_object) {
        if (p >= it->end || *p != '"') return 0;
        start = p;
        p = gk__json_skip_string(p, it->end);
        if (!p) return 0;
        if (key) {
            key->ptr = start;
            key->len = (size_t)(p - start);
        }
        p = gk__json_ws(p, it->end);
        if (p >= it->end || *p != ':') return 0;
        p = gk__json_ws(p + 1, it->end);
    }
    start = p;
    p = gk__json_skip_value(p, it->end, type);
    if (!p) return 0;
    value->ptr = start;
    value->len = (size_t)(p - start);
    it->p = p;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Logging                                                                  */
/* ------------------------------------------------------------------------ */

enum { GK_LOG_DEBUG = 0, GK_LOG_INFO = 1, GK_LOG_WARN = 2, GK_LOG_ERROR = 3 };

static inline void gk_log(int level, const char *msg, size_t len) {
    gk_log_raw((int32_t)level, msg, len);
}

static inline void gk_log_debug(const char *msg) { gk_log(GK_LOG_DEBUG, msg, strlen(msg)); }
static inline void gk_log_info(const char *msg) { gk_log(GK_LOG_INFO, msg, strlen(msg)); }
static inline void gk_log_warn(const char *msg) { gk_log(GK_LOG_WARN, msg, strlen(msg)); }
static inline void gk_log_error(const char *msg) { gk_log(GK_LOG_ERROR, msg, strlen(msg)); }

/* printf-style logging. Formatting pulls printf into the module (a few KB),
 * which is why the plain variants above exist. */
static inline void gk_logf(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline void gk_logf(int level, const char *fmt, ...) {
    char small[256];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        gk_log(level, small, (size_t)n);
    } else {
        char *big = (char *)malloc((size_t)n + 1);
        if (!big) {
            gk_log(level, small, sizeof small - 1); /* truncated beats nothing */
            return;
        }
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        gk_log(level, big, (size_t)n);
        free(big);
    }
}

/* ------------------------------------------------------------------------ */
/* Host calls                                                               */
/* ------------------------------------------------------------------------ */

/* Calls host function `name` with JSON args (NULL/0 for no args). On
 * success returns 1 and hands over the result block: the caller frees
 * *out_ptr with gk_free (pass out_ptr NULL to discard it). On failure
 * returns 0 with *out_ptr NULL; gk_last_error says why. */
static inline int gk_host_call_json_n(const char *name, const char *args, size_t args_len,
                                      char **out_ptr, size_t *out_len) {
    uint64_t r = (uint64_t)gk_host_call_raw(name, strlen(name), args, args_len);
    char *ptr = (char *)gk_unpack_ptr(r);
    if (out_len) *out_len = r ? gk_unpack_len(r) : 0;
    if (out_ptr) *out_ptr = r ? ptr : NULL;
    else if (r) gk_free(ptr);
    return r != 0;
}

/* Same with NUL-terminated args text (NULL for no args). */
static inline int gk_host_call_json(const char *name, const char *json_args, char **out_ptr,
                                    size_t *out_len) {
    return gk_host_call_json_n(name, json_args, json_args ? strlen(json_args) : 0, out_ptr,
                               out_len);
}

/* Same, copying the result into `result` (emptied first, NUL-terminated)
 * and freeing the host's block: the easy way when the result is parsed. */
static inline int gk_host_call(const char *name, const char *args, size_t args_len,
                               gk_buf *result) {
    char *p;
    size_t n;
    gk_buf_reset(result);
    if (!gk_host_call_json_n(name, args, args_len, &p, &n)) return 0;
    gk_buf_append(result, p, n);
    gk_free(p);
    return !result->oom;
}

/* The {"code","message"} JSON of the last failed host call. Returns 1 and
 * hands over the block (free *out_ptr with gk_free), or 0 if there is none.
 * Uses the `last_error` import, which GoatKit's own host lacks: a plugin
 * that must also run there should not call this. */
static inline int gk_last_error(char **out_ptr, size_t *out_len) {
    uint64_t r = (uint64_t)gk_last_error_raw();
    *out_ptr = r ? (char *)gk_unpack_ptr(r) : NULL;
    *out_len = r ? gk_unpack_len(r) : 0;
    return r != 0;
}

/* The cache is namespaced per plugin by the host. Values are bytes, sent as
 * base64. ttl_seconds <= 0 means the host's default (no expiry). Returns 1
 * on success. */
static inline int gk_cache_set(const char *key, const void *value, size_t len,
                               int64_t ttl_seconds) {
    gk_buf args = GK_BUF_INIT;
    int ok;
    gk_json_object_begin(&args);
    gk_json_key(&args, "key");
    gk_json_cstr(&args, key);
    gk_json_key(&args, "value");
    gk__json_sep(&args);
    gk_buf_append_char(&args, '"');
    gk_buf_append_base64(&args, value, len);
    gk_buf_append_char(&args, '"');
    gk_json_key(&args, "ttl");
    gk_json_int(&args, ttl_seconds > 0 ? ttl_seconds : 0);
    gk_json_object_end(&args);
    ok = !args.oom && gk_host_call_json_n("cache_set", args.data, args.len, NULL, NULL);
    gk_buf_free(&args);
    return ok;
}

/* Reads `key` from the cache. Returns 1 if the host answered (then *found
 * says whether the key exists, and value, emptied first, holds the decoded
 * bytes), 0 if the call failed or the answer was malformed. */
static inline int gk_cache_get(const char *key, gk_buf *value, int *found) {
    gk_buf args = GK_BUF_INIT, res = GK_BUF_INIT;
    gk_slice v;
    int ok, type;
    *found = 0;
    gk_buf_reset(value);
    gk_json_object_begin(&args);
    gk_json_key(&args, "key");
    gk_json_cstr(&args, key);
    gk_json_object_end(&args);
    ok = !args.oom && gk_host_call("cache_get", args.data, args.len, &res);
    gk_buf_free(&args);
    if (ok) {
        int present = 0, flag;
        type = gk_json_find(res.data, res.len, "value", &v);
        if (type == GK_JSON_STRING) {
            gk_buf b64 = GK_BUF_INIT;
            ok = gk_json_decode_string(v.ptr, v.len, &b64) &&
                 gk_base64_decode(b64.data, b64.len, value);
            gk_buf_free(&b64);
            present = 1;
        } else if (type != GK_JSON_NULL && type != GK_JSON_MISSING)
            ok = 0;
        /* Only a value makes a hit: "found" without one has nothing to give. */
        *found = ok && present && (!gk_json_get_bool(res.data, res.len, "found", &flag) || flag);
        ok = ok && gk_buf_reserve(value, 0);
    }
    gk_buf_free(&res);
    return ok;
}

/* Asks the host for a configuration value; result (emptied first) gets the
 * host's JSON answer as it is. Returns 1 on success. */
static inline int gk_config_get(const char *key, gk_buf *result) {
    gk_buf args = GK_BUF_INIT;
    int ok;
    gk_json_object_begin(&args);
    gk_json_key(&args, "key");
    gk_json_cstr(&args, key);
    gk_json_object_end(&args);
    ok = !args.oom && gk_host_call("config_get", args.data, args.len, result);
    gk_buf_free(&args);
    return ok;
}

/* The {"code","message"} of the last failed host call, decoded into code and
 * message (both emptied first), with stand-ins ("host_error", "a host call
 * failed") when the host gave no readable report. */
static inline void gk_last_error_parts(gk_buf *code, gk_buf *message) {
    char *err;
    size_t len;
    gk_buf_reset(code);
    gk_buf_reset(message);
    if (gk_last_error(&err, &len)) {
        gk_json_get_string(err, len, "code", code);
        gk_json_get_string(err, len, "message", message);
        gk_free(err);
    }
    if (code->len == 0) gk_buf_append_cstr(code, "host_error");
    if (message->len == 0) gk_buf_append_cstr(message, "a host call failed");
}

/* Statements for db_query and db_exec: gk_sql_begin empties b and writes
 * {"query": sql, "args": [ ; the caller appends the arguments with gk_json_*
 * and gk_sql_end closes the array and the object. */
static inline void gk_sql_begin(gk_buf *b, const char *sql) {
    gk_buf_reset(b);
    gk_json_object_begin(b);
    gk_json_key(b, "query");
    gk_json_cstr(b, sql);
    gk_json_key(b, "args");
    gk_json_array_begin(b);
}

static inline void gk_sql_end(gk_buf *b) {
    gk_json_array_end(b);
    gk_json_object_end(b);
}

/* Runs a finished statement with db_query; rows gets the host's answer (an
 * array of row objects, or null for none). Returns 0 on failure (see
 * gk_last_error), also when the statement ran out of memory. */
static inline int gk_db_query(const gk_buf *stmt, gk_buf *rows) {
    return !stmt->oom && gk_host_call("db_query", stmt->data, stmt->len, rows);
}

/* Runs a finished statement with db_exec; *affected (may be NULL) gets the
 * number of rows changed. Returns 0 on failure (see gk_last_error). */
static inline int gk_db_exec(const gk_buf *stmt, int64_t *affected) {
    gk_buf res = GK_BUF_INIT;
    int ok = !stmt->oom && gk_host_call("db_exec", stmt->data, stmt->len, &res);
    if (ok && affected && !gk_json_get_int(res.data, res.len, "affected", affected))
        *affected = 0;
    gk_buf_free(&res);
    return ok;
}

/* Which database db_query and db_exec reach, for the SQL that differs (DDL,
 * full-text search, date arithmetic): GK_DB_SQLITE or GK_DB_POSTGRES, or
 * GK_DB_UNKNOWN when the probe failed for another reason (no database, a
 * timeout). The answer is remembered for the instance's lifetime. */
enum { GK_DB_UNKNOWN = 0, GK_DB_SQLITE = 1, GK_DB_POSTGRES = 2 };

static inline int gk_db_dialect(void) {
    static int dialect = GK_DB_UNKNOWN;
    static const char probe[] = "{\"query\":\"SELECT sqlite_version() AS v\"}";
    char *res, *err;
    size_t n, en;
    if (dialect != GK_DB_UNKNOWN) return dialect;
    if (gk_host_call_json_n("db_query", probe, sizeof probe - 1, &res, &n)) {
        gk_free(res);
        return dialect = GK_DB_SQLITE;
    }
    /* PostgreSQL has no sqlite_version(): the server refuses the statement. */
    if (gk_last_error(&err, &en)) {
        gk_buf code = GK_BUF_INIT;
        if (gk_json_get_string(err, en, "code", &code) && strcmp(code.data, "sql_error") == 0)
            dialect = GK_DB_POSTGRES;
        gk_buf_free(&code);
        gk_free(err);
    }
    return dialect;
}

/* ------------------------------------------------------------------------ */
/* Returning results from gk_call / gk_register                             */
/* ------------------------------------------------------------------------ */

/* Copies json into a fresh gk_malloc block and returns it packed; an empty
 * text returns 0 (the ABI's empty result). Traps if memory is exhausted. */
static inline uint64_t gk_return_json(const char *json, size_t len) {
    char *p;
    if (len == 0) return 0;
    p = (char *)gk_malloc(len);
    if (!p) __builtin_trap();
    memcpy(p, json, len);
    return gk_pack(p, len);
}

static inline uint64_t gk_return_cstr(const char *json) {
    return gk_return_json(json, strlen(json));
}

/* Returns the buffer's content and consumes the buffer (it is left empty).
 * Traps if the buffer ran out of memory while it was built. */
static inline uint64_t gk_return_buf(gk_buf *b) {
    uint64_t r;
    if (b->oom) {
        gk_buf_free(b);
        __builtin_trap();
    }
    if (b->len == 0) {
        gk_buf_free(b);
        return 0;
    }
#ifndef GK_NO_ALLOC_EXPORTS
    /* gk_free is free(), so the host can free the buffer's own block: no copy. */
    r = gk_pack(b->data, b->len);
    gk_buf_init(b);
#else
    r = gk_return_json(b->data, b->len);
    gk_buf_free(b);
#endif
    return r;
}

/* A route's "303 See Other" to location (a URL or a path, relative ones
 * resolved by the browser against the request's URL). */
static inline uint64_t gk_return_redirect(const char *location) {
    gk_buf b = GK_BUF_INIT;
    gk_json_object_begin(&b);
    gk_json_key(&b, "status");
    gk_json_int(&b, 303);
    gk_json_key(&b, "headers");
    gk_json_object_begin(&b);
    gk_json_key(&b, "location");
    gk_json_cstr(&b, location);
    gk_json_object_end(&b);
    gk_json_key(&b, "body");
    gk_json_cstr(&b, "");
    gk_json_object_end(&b);
    return gk_return_buf(&b);
}

/* For gk_register only: packs static data the host must never free. */
static inline uint64_t gk_return_static(const char *json) { return gk_pack(json, strlen(json)); }

/* The ABI's empty result (the host sees null). */
static inline uint64_t gk_return_empty(void) { return 0; }

/* Returns {"error":{"code":code,"message":message}}: the host raises it as
 * a call error carrying that code and message. */
static inline uint64_t gk_return_error(const char *code, const char *message) {
    gk_buf b = GK_BUF_INIT;
    gk_json_object_begin(&b);
    gk_json_key(&b, "error");
    gk_json_object_begin(&b);
    gk_json_key(&b, "code");
    gk_json_cstr(&b, code);
    gk_json_key(&b, "message");
    gk_json_cstr(&b, message);
    gk_json_object_end(&b);
    gk_json_object_end(&b);
    return gk_return_buf(&b);
}

#ifdef __cplusplus
}
#endif

#endif /* GOATKIT_H */
