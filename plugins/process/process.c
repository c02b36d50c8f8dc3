/*
 * process: workflows as states and transitions.
 *
 * A workflow belongs to an entity ("ticket") and is a set of states (ids,
 * labels and positions on the designer's canvas, one of them initial) and
 * the transitions allowed between them. Workflows are designed on the
 * plugin's pages (an SVG designer in static/process.js) and stored in the
 * plugin's own table, process_workflows; at most one per entity is active.
 * The active one is enforced through the host's `after_save` hook: a save
 * that moves a record along a transition the workflow does not have is
 * refused with a message for the end user.
 *
 * It needs no capabilities: it only reads and writes its own table. Texts
 * for people (validation problems, refusals) come from i18n/<lang>.yaml
 * through the host's `translate` call, in the language of the request.
 * Build with ./build.sh.
 */
#include "goatkit.h"

/* Static: the host reads the registration once and never frees it. */
static const char REGISTRATION[] =
    "{"
    "\"name\":\"process\","
    "\"version\":\"1.0.0\","
    "\"description\":\"Process management: workflows as states and transitions, designed on a "
    "visual page and enforced through the after_save hook\","
    "\"author\":\"goatkit_asgi contributors\","
    "\"license\":\"Apache-2.0\","
    "\"permissions\":[\"process.design\"],"
    "\"functions\":["
    "{\"name\":\"allowed_transitions\",\"args\":[\"entity\",\"state\"],\"returns\":\"object\","
    "\"description\":\"The states a record of entity may move to from state under the active "
    "workflow: {workflow, any, current, states: [{id, label}]}\"},"
    "{\"name\":\"save_workflow\",\"args\":[],\"returns\":\"object\","
    "\"description\":\"Creates (or with id updates) a workflow from {name, entity, definition, "
    "active?}; returns {id}\"},"
    "{\"name\":\"get_workflow\",\"args\":[\"id\"],\"returns\":\"object\","
    "\"description\":\"One workflow: {id, name, entity, active, updated_at, definition}\"}"
    "],"
    "\"routes\":["
    "{\"method\":\"GET\",\"path\":\"/process\",\"handler\":\"list_page\","
    "\"permission\":\"process.design\",\"description\":\"The workflows and a form for a new one\"},"
    "{\"method\":\"POST\",\"path\":\"/process/new\",\"handler\":\"create_workflow\","
    "\"permission\":\"process.design\",\"description\":\"Creates a workflow, then shows its "
    "designer\"},"
    "{\"method\":\"GET\",\"path\":\"/process/{id:int}\",\"handler\":\"designer_page\","
    "\"permission\":\"process.design\",\"description\":\"The visual designer of one workflow\"},"
    "{\"method\":\"POST\",\"path\":\"/process/{id:int}/save\",\"handler\":\"save_definition\","
    "\"permission\":\"process.design\",\"description\":\"Saves the designer's JSON definition\"},"
    "{\"method\":\"POST\",\"path\":\"/process/{id:int}/activate\",\"handler\":\"activate\","
    "\"permission\":\"process.design\",\"description\":\"Makes the workflow the active one of its "
    "entity\"},"
    "{\"method\":\"POST\",\"path\":\"/process/{id:int}/deactivate\",\"handler\":\"deactivate\","
    "\"permission\":\"process.design\",\"description\":\"Stops enforcing the workflow\"},"
    "{\"method\":\"POST\",\"path\":\"/process/{id:int}/delete\",\"handler\":\"delete_workflow\","
    "\"permission\":\"process.design\",\"description\":\"Deletes the workflow\"}"
    "],"
    "\"menu_items\":[{\"id\":\"process\",\"label\":\"Workflows\",\"path\":\"/process\","
    "\"icon\":\"workflow\",\"location\":\"main\",\"order\":150,\"permission\":\"process.design\"}],"
    "\"hooks\":[{\"name\":\"after_save\",\"handler\":\"after_save\"}]"
    "}";

uint64_t gk_register(void) { return gk_return_static(REGISTRATION); }

/* ------------------------------------------------------------------------ */
/* Limits                                                                   */
/* ------------------------------------------------------------------------ */

#define MAX_STATES 50
#define MAX_TRANSITIONS 200
#define MAX_ID 40          /* characters of [a-z0-9_-] */
#define MAX_LABEL 80       /* characters (code points) */
#define MAX_NAME 100       /* characters (code points) */
#define MAX_COORD 4000     /* x and y are within 0..MAX_COORD */
#define MAX_BODY 65536     /* bytes of a save request */
#define MAX_PROBLEMS 25    /* problems listed one by one; the rest are counted */
#define SHOWN_CHARS 40     /* characters of user text quoted in a message */
#define LABEL_BYTES (MAX_LABEL * 4 + 1)
#define NAME_BYTES (MAX_NAME * 4 + 1)

/* ------------------------------------------------------------------------ */
/* Small text helpers                                                       */
/* ------------------------------------------------------------------------ */

/* Characters (code points) in valid UTF-8 text. */
static size_t utf8_chars(const char *s, size_t n) {
    size_t i, count = 0;
    for (i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) count++;
    return count;
}

/* Bytes of the first `chars` characters of UTF-8 text s (n bytes). */
static size_t utf8_prefix(const char *s, size_t n, size_t chars) {
    size_t i, seen = 0;
    for (i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (seen == chars) return i;
            seen++;
        }
    }
    return n;
}

/* Strips ASCII white space at both ends of b, in place. */
static void trim(gk_buf *b) {
    size_t start = 0, end = b->len;
    if (!b->data) return;
    while (start < end && strchr(" \t\r\n", b->data[start])) start++;
    while (end > start && strchr(" \t\r\n", b->data[end - 1])) end--;
    memmove(b->data, b->data + start, end - start);
    b->len = end - start;
    b->data[b->len] = '\0';
}

/* Whether text has a control character (a line break, a tab, ...). */
static int has_control(const char *s, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 1;
    return 0;
}

/* Ids of states and entities: 1..MAX_ID characters of [a-z0-9_-]. */
static int valid_id(const char *s, size_t n) {
    size_t i;
    if (n == 0 || n > MAX_ID) return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return 0;
    }
    return 1;
}

/* Writes v as decimal text into buf (at least 24 bytes); returns buf. */
static const char *int_text(char *buf, int64_t v) {
    char tmp[24];
    size_t i = sizeof tmp, n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[--i] = '-';
    while (i < sizeof tmp) buf[n++] = tmp[i++];
    buf[n] = '\0';
    return buf;
}

/* Sets out to user text for a message: at most SHOWN_CHARS characters, with
 * an ellipsis when cut. With quote set, the text is put in double quotes. */
static void shown(gk_buf *out, const char *s, size_t n, int quote) {
    size_t keep = utf8_prefix(s, n, SHOWN_CHARS);
    gk_buf_reset(out);
    if (quote) gk_buf_append_char(out, '"');
    gk_buf_append(out, s, keep);
    if (keep < n) gk_buf_append_cstr(out, "\xe2\x80\xa6"); /* U+2026 */
    if (quote) gk_buf_append_char(out, '"');
    gk_buf_reserve(out, 0); /* data is never NULL afterwards */
}

/* A raw JSON value (a number, a string literal, ...) as shown text. */
static void shown_raw(gk_buf *out, const gk_slice *v) { shown(out, v->ptr, v->len, 0); }

/* ------------------------------------------------------------------------ */
/* Translation (host call `translate`, in the request's language)           */
/* ------------------------------------------------------------------------ */

/* Sets out to the text of `key` with {name} placeholders filled from the
 * (name, value) string pairs in ap, ended by NULL. If the host cannot
 * answer, out gets the key itself. */
static void tr_v(gk_buf *out, const char *key, va_list ap) {
    gk_buf req = GK_BUF_INIT, res = GK_BUF_INIT;
    const char *name;
    gk_json_object_begin(&req);
    gk_json_key(&req, "key");
    gk_json_cstr(&req, key);
    gk_json_key(&req, "args");
    gk_json_object_begin(&req);
    while ((name = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        gk_json_key(&req, name);
        gk_json_cstr(&req, value ? value : "");
    }
    gk_json_object_end(&req);
    gk_json_object_end(&req);
    if (req.oom || !gk_host_call("translate", req.data, req.len, &res) ||
        !gk_json_get_string(res.data, res.len, "value", out)) {
        gk_buf_reset(out);
        gk_buf_append_cstr(out, key);
    }
    gk_buf_free(&req);
    gk_buf_free(&res);
}

static void tr(gk_buf *out, const char *key, ...) {
    va_list ap;
    va_start(ap, key);
    tr_v(out, key, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Problems: what is wrong with a submitted workflow, as translated texts   */
/* ------------------------------------------------------------------------ */

typedef struct problems {
    gk_buf items; /* JSON strings separated by commas: the inside of an array */
    int count;    /* all problems found, also those past MAX_PROBLEMS */
} problems;

/* Records one problem: the text of `key` with (name, value) pairs, NULL-ended. */
static void problem(problems *p, const char *key, ...) {
    gk_buf text = GK_BUF_INIT;
    va_list ap;
    if (p->count++ >= MAX_PROBLEMS) return;
    va_start(ap, key);
    tr_v(&text, key, ap);
    va_end(ap);
    gk_json_string(&p->items, text.data ? text.data : "", text.len);
    gk_buf_free(&text);
}

/* Writes the problems as a JSON array, with a closing "... more" item when
 * some were only counted. */
static void write_problems(gk_buf *b, const problems *p) {
    gk_json_array_begin(b);
    gk_buf_append(b, p->items.data, p->items.len);
    if (p->count > MAX_PROBLEMS) {
        gk_buf text = GK_BUF_INIT;
        char n[24];
        tr(&text, "problem.more", "n", int_text(n, p->count - MAX_PROBLEMS), NULL);
        gk_json_string(b, text.data, text.len);
        gk_buf_free(&text);
    }
    gk_json_array_end(b);
}

/* The problems (each a sentence) joined by spaces into one text (for call errors). */
static void join_problems(gk_buf *out, const problems *p) {
    gk_buf list = GK_BUF_INIT, text = GK_BUF_INIT;
    gk_json_iter it;
    gk_slice item;
    int type, first = 1;
    write_problems(&list, p);
    if (gk_json_iter_begin(&it, list.data, list.len, '[')) {
        while (gk_json_iter_next(&it, NULL, &item, &type)) {
            gk_buf_reset(&text);
            if (!gk_json_decode_string(item.ptr, item.len, &text)) continue;
            if (!first) gk_buf_append_char(out, ' ');
            gk_buf_append(out, text.data, text.len);
            first = 0;
        }
    }
    gk_buf_free(&list);
    gk_buf_free(&text);
}

/* ------------------------------------------------------------------------ */
/* Workflow definitions: parsing, validation and serialisation              */
/* ------------------------------------------------------------------------ */

typedef struct wf_state {
    char id[MAX_ID + 1];
    char label[LABEL_BYTES];
    int64_t x, y;
} wf_state;

typedef struct wf_transition {
    int from, to; /* indexes into states */
    char label[LABEL_BYTES]; /* "" when it has none */
} wf_transition;

typedef struct workflow {
    int nstates, ntransitions;
    int initial; /* index of the initial state, -1 if none */
    wf_state states[MAX_STATES];
    wf_transition transitions[MAX_TRANSITIONS];
} workflow;

static int find_state(const workflow *wf, const char *id, size_t n) {
    int i;
    for (i = 0; i < wf->nstates; i++)
        if (strlen(wf->states[i].id) == n && memcmp(wf->states[i].id, id, n) == 0) return i;
    return -1;
}

static int find_transition(const workflow *wf, int from, int to) {
    int i;
    for (i = 0; i < wf->ntransitions; i++)
        if (wf->transitions[i].from == from && wf->transitions[i].to == to) return i;
    return -1;
}

/* Members of a JSON array (0 when it is not one). */
static int count_items(const char *json, size_t len) {
    gk_json_iter it;
    gk_slice v;
    int type, n = 0;
    if (!gk_json_iter_begin(&it, json, len, '[')) return 0;
    while (gk_json_iter_next(&it, NULL, &v, &type)) n++;
    return n;
}

/* Reads a label (optional when `optional`): trimmed, 1..MAX_LABEL characters
 * on one line. Returns 1 and fills dst (LABEL_BYTES), or 0 when invalid. */
static int read_label(const char *obj, size_t len, char *dst, int optional) {
    gk_buf text = GK_BUF_INIT;
    gk_slice v;
    int type = gk_json_find(obj, len, "label", &v), ok;
    dst[0] = '\0';
    if (optional && (type == GK_JSON_MISSING || type == GK_JSON_NULL)) return 1;
    ok = type == GK_JSON_STRING && gk_json_decode_string(v.ptr, v.len, &text);
    if (ok) {
        trim(&text);
        ok = (text.len > 0 || optional) && utf8_chars(text.data, text.len) <= MAX_LABEL &&
             !has_control(text.data, text.len) && text.len < LABEL_BYTES;
        if (ok) memcpy(dst, text.data ? text.data : "", text.len + 1);
    }
    gk_buf_free(&text);
    return ok;
}

/* Copies text into a label field: one line, at most MAX_LABEL characters. */
static void copy_label(char *dst, const gk_buf *text) {
    size_t n = text->data ? utf8_prefix(text->data, text->len, MAX_LABEL) : 0;
    if (n >= LABEL_BYTES || has_control(text->data, n)) n = 0;
    memcpy(dst, text->data ? text->data : "", n);
    dst[n] = '\0';
}

/* Reads coordinate `axis` of a state: a number within 0..MAX_COORD, rounded
 * to a whole pixel. Records a problem and returns 0 when it is not. */
static int read_coord(const char *obj, size_t len, const char *axis, const char *who,
                      int64_t *out, problems *p) {
    gk_slice v;
    gk_buf raw = GK_BUF_INIT;
    double d;
    int type = gk_json_find(obj, len, axis, &v);
    if (type == GK_JSON_MISSING) {
        problem(p, "problem.state_coord_missing", "state", who, "axis", axis, NULL);
        return 0;
    }
    if (type == GK_JSON_NUMBER && gk_json_get_double(obj, len, axis, &d) && d >= 0 &&
        d <= MAX_COORD) {
        *out = (int64_t)(d + 0.5);
        if (*out > MAX_COORD) *out = MAX_COORD;
        return 1;
    }
    shown_raw(&raw, &v);
    problem(p, "problem.state_coord", "state", who, "axis", axis, "value", raw.data, NULL);
    gk_buf_free(&raw);
    return 0;
}

/* Checks one state object (number n, 1-based) and adds it to wf when its id
 * is usable, so that transitions can refer to it even if other fields of
 * the state have problems. Returns 1 when it is marked initial. */
static int parse_state(workflow *wf, int n, const gk_slice *obj, int type, problems *p) {
    gk_buf id = GK_BUF_INIT, who = GK_BUF_INIT;
    gk_slice v;
    char num[24], label[LABEL_BYTES];
    int64_t x = 0, y = 0;
    int initial = 0, id_ok = 0, itype;

    int_text(num, n);
    if (type != GK_JSON_OBJECT) {
        problem(p, "problem.state_not_object", "n", num, NULL);
        return 0;
    }
    /* A state is named by its id in messages, or by its number without one. */
    if (!gk_json_get_string(obj->ptr, obj->len, "id", &id)) {
        problem(p, "problem.state_id_missing", "n", num, NULL);
    } else if (!valid_id(id.data, id.len)) {
        gk_buf show = GK_BUF_INIT;
        shown(&show, id.data, id.len, 0);
        problem(p, "problem.state_id_invalid", "n", num, "id", show.data, NULL);
        gk_buf_free(&show);
    } else if (find_state(wf, id.data, id.len) >= 0) {
        problem(p, "problem.state_id_duplicate", "id", id.data, NULL);
    } else
        id_ok = 1;
    if (id_ok) shown(&who, id.data, id.len, 1);
    else {
        gk_buf_reset(&who);
        gk_buf_append_char(&who, '#');
        gk_buf_append_cstr(&who, num);
    }

    if (!read_label(obj->ptr, obj->len, label, 0))
        problem(p, "problem.state_label", "state", who.data, NULL);
    read_coord(obj->ptr, obj->len, "x", who.data, &x, p);
    read_coord(obj->ptr, obj->len, "y", who.data, &y, p);
    itype = gk_json_find(obj->ptr, obj->len, "initial", &v);
    if (itype == GK_JSON_BOOL) initial = v.ptr[0] == 't';
    else if (itype != GK_JSON_MISSING && itype != GK_JSON_NULL)
        problem(p, "problem.state_initial", "state", who.data, NULL);

    if (id_ok && wf->nstates < MAX_STATES) {
        wf_state *s = &wf->states[wf->nstates];
        memcpy(s->id, id.data, id.len + 1);
        memcpy(s->label, label, sizeof label);
        s->x = x;
        s->y = y;
        if (initial) wf->initial = wf->nstates;
        wf->nstates++;
    }
    gk_buf_free(&id);
    gk_buf_free(&who);
    return initial;
}

/* Checks one transition object (number n, 1-based) and adds it to wf when
 * it is valid. */
static void parse_transition(workflow *wf, int n, const gk_slice *obj, int type, problems *p) {
    gk_buf from = GK_BUF_INIT, to = GK_BUF_INIT, who = GK_BUF_INIT, show = GK_BUF_INIT;
    char num[24], label[LABEL_BYTES];
    int f = -1, t = -1, ok = 1;

    int_text(num, n);
    if (type != GK_JSON_OBJECT) {
        problem(p, "problem.transition_not_object", "n", num, NULL);
        return;
    }
    if (!gk_json_get_string(obj->ptr, obj->len, "from", &from) ||
        !gk_json_get_string(obj->ptr, obj->len, "to", &to)) {
        problem(p, "problem.transition_ends_missing", "n", num, NULL);
        goto done;
    }
    /* Named "from" -> "to" in messages. */
    shown(&show, from.data, from.len, 1);
    gk_buf_append(&who, show.data, show.len);
    gk_buf_append_cstr(&who, " \xe2\x86\x92 "); /* U+2192 */
    shown(&show, to.data, to.len, 1);
    gk_buf_append(&who, show.data, show.len);

    f = find_state(wf, from.data, from.len);
    t = find_state(wf, to.data, to.len);
    if (from.len == to.len && memcmp(from.data, to.data, from.len) == 0) {
        problem(p, "problem.transition_self", "transition", who.data, NULL);
        ok = 0;
    } else {
        if (f < 0) {
            shown(&show, from.data, from.len, 0);
            problem(p, "problem.transition_unknown_state", "transition", who.data, "id",
                    show.data, NULL);
            ok = 0;
        }
        if (t < 0) {
            shown(&show, to.data, to.len, 0);
            problem(p, "problem.transition_unknown_state", "transition", who.data, "id",
                    show.data, NULL);
            ok = 0;
        }
        if (ok && find_transition(wf, f, t) >= 0) {
            problem(p, "problem.transition_duplicate", "transition", who.data, NULL);
            ok = 0;
        }
    }
    if (!read_label(obj->ptr, obj->len, label, 1)) {
        problem(p, "problem.transition_label", "transition", who.data, NULL);
        ok = 0;
    }
    if (ok && wf->ntransitions < MAX_TRANSITIONS) {
        wf_transition *tr = &wf->transitions[wf->ntransitions++];
        tr->from = f;
        tr->to = t;
        memcpy(tr->label, label, sizeof label);
    }
done:
    gk_buf_free(&from);
    gk_buf_free(&to);
    gk_buf_free(&who);
    gk_buf_free(&show);
}

/* Parses and checks a definition {"states": [...], "transitions": [...]}
 * (raw JSON) into wf. Every rule that fails adds a problem; wf is usable
 * only when p->count did not grow. */
static void parse_definition(const char *def, size_t len, workflow *wf, problems *p) {
    gk_slice states, transitions, item;
    gk_json_iter it;
    int type, n, initials = 0;
    char num[24];

    memset(wf, 0, sizeof *wf);
    wf->initial = -1;
    if (gk_json_find(def, len, "states", &states) != GK_JSON_ARRAY) {
        problem(p, "problem.states_missing", NULL);
        return;
    }
    n = count_items(states.ptr, states.len);
    if (n == 0) {
        problem(p, "problem.states_none", NULL);
        return;
    }
    if (n > MAX_STATES) {
        problem(p, "problem.states_too_many", "n", int_text(num, n), "max", "50", NULL);
        return;
    }
    n = 0;
    gk_json_iter_begin(&it, states.ptr, states.len, '[');
    while (gk_json_iter_next(&it, NULL, &item, &type))
        initials += parse_state(wf, ++n, &item, type, p);
    if (initials == 0) problem(p, "problem.initial_none", NULL);
    else if (initials > 1) problem(p, "problem.initial_many", "n", int_text(num, initials), NULL);

    type = gk_json_find(def, len, "transitions", &transitions);
    if (type == GK_JSON_MISSING || type == GK_JSON_NULL) return; /* none yet */
    if (type != GK_JSON_ARRAY) {
        problem(p, "problem.transitions_not_list", NULL);
        return;
    }
    n = count_items(transitions.ptr, transitions.len);
    if (n > MAX_TRANSITIONS) {
        problem(p, "problem.transitions_too_many", "n", int_text(num, n), "max", "200", NULL);
        return;
    }
    n = 0;
    gk_json_iter_begin(&it, transitions.ptr, transitions.len, '[');
    while (gk_json_iter_next(&it, NULL, &item, &type)) parse_transition(wf, ++n, &item, type, p);
}

/* Checks a workflow name: trimmed in place, 1..MAX_NAME characters on one line. */
static int check_name(gk_buf *name, problems *p) {
    char n[24];
    size_t chars;
    trim(name);
    chars = name->data ? utf8_chars(name->data, name->len) : 0;
    if (chars == 0 || chars > MAX_NAME || has_control(name->data, name->len) ||
        name->len >= NAME_BYTES) {
        problem(p, "problem.name", "n", int_text(n, (int64_t)chars), NULL);
        return 0;
    }
    return 1;
}

/* Checks an entity name, such as "ticket": the rules of a state id. */
static int check_entity(const gk_buf *entity, problems *p) {
    gk_buf show = GK_BUF_INIT;
    if (valid_id(entity->data ? entity->data : "", entity->len)) return 1;
    shown(&show, entity->data ? entity->data : "", entity->len, 0);
    problem(p, "problem.entity", "entity", show.data, NULL);
    gk_buf_free(&show);
    return 0;
}

/* The definition as the plugin stores it: known fields only, in a fixed
 * order, coordinates as whole numbers, "initial" only on the initial state
 * and "label" only on transitions that have one. */
static void write_definition(gk_buf *b, const workflow *wf) {
    int i;
    gk_json_object_begin(b);
    gk_json_key(b, "states");
    gk_json_array_begin(b);
    for (i = 0; i < wf->nstates; i++) {
        const wf_state *s = &wf->states[i];
        gk_json_object_begin(b);
        gk_json_key(b, "id");
        gk_json_cstr(b, s->id);
        gk_json_key(b, "label");
        gk_json_cstr(b, s->label);
        gk_json_key(b, "x");
        gk_json_int(b, s->x);
        gk_json_key(b, "y");
        gk_json_int(b, s->y);
        if (i == wf->initial) {
            gk_json_key(b, "initial");
            gk_json_bool(b, 1);
        }
        gk_json_object_end(b);
    }
    gk_json_array_end(b);
    gk_json_key(b, "transitions");
    gk_json_array_begin(b);
    for (i = 0; i < wf->ntransitions; i++) {
        const wf_transition *t = &wf->transitions[i];
        gk_json_object_begin(b);
        gk_json_key(b, "from");
        gk_json_cstr(b, wf->states[t->from].id);
        gk_json_key(b, "to");
        gk_json_cstr(b, wf->states[t->to].id);
        if (t->label[0]) {
            gk_json_key(b, "label");
            gk_json_cstr(b, t->label);
        }
        gk_json_object_end(b);
    }
    gk_json_array_end(b);
    gk_json_object_end(b);
}

/* {"id", "label"} of state i. */
static void write_state_ref(gk_buf *b, const workflow *wf, int i) {
    gk_json_object_begin(b);
    gk_json_key(b, "id");
    gk_json_cstr(b, wf->states[i].id);
    gk_json_key(b, "label");
    gk_json_cstr(b, wf->states[i].label);
    gk_json_object_end(b);
}

/* ------------------------------------------------------------------------ */
/* Database: the table process_workflows                                    */
/* ------------------------------------------------------------------------ */

/* Host errors are reported as this call's error, with the host's code. */
static uint64_t return_host_error(const char *what) {
    gk_buf code = GK_BUF_INIT, message = GK_BUF_INIT;
    uint64_t r;
    gk_last_error_parts(&code, &message);
    gk_logf(GK_LOG_WARN, "%s failed: %s", what, code.data);
    r = gk_return_error(code.data, message.data);
    gk_buf_free(&code);
    gk_buf_free(&message);
    return r;
}

/* Runs a built statement with db_exec or db_query; the answer goes to res. */
static int run(const char *fn, gk_buf *req, gk_buf *res) {
    return !req->oom && gk_host_call(fn, req->data, req->len, res);
}

/* The current time in UTC as SQL, written like Python's isoformat(). */
static const char *now_sql(void) {
    return gk_db_dialect() == GK_DB_POSTGRES
               ? "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || '+00:00'"
               : "strftime('%Y-%m-%dT%H:%M:%S', 'now') || '+00:00'";
}

/* Creates the table on first use in this instance. Returns 0 (with the
 * host's last error) when the database is not usable. */
static int ensure_tables(void) {
    static int ready = 0;
    gk_buf req = GK_BUF_INIT, res = GK_BUF_INIT;
    int dialect, ok;
    if (ready) return 1;
    dialect = gk_db_dialect();
    if (dialect == GK_DB_UNKNOWN) return 0;
    /* The plugin numbers its rows itself (see insert_workflow), so the id is
     * a plain key: the rowid on SQLite, a bigint on PostgreSQL. */
    gk_sql_begin(&req, dialect == GK_DB_POSTGRES
                          ? "CREATE TABLE IF NOT EXISTS process_workflows ("
                            "id BIGINT PRIMARY KEY, name TEXT NOT NULL, entity TEXT NOT NULL, "
                            "definition TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 0, "
                            "updated_at TEXT NOT NULL)"
                          : "CREATE TABLE IF NOT EXISTS process_workflows ("
                            "id INTEGER PRIMARY KEY, name TEXT NOT NULL, entity TEXT NOT NULL, "
                            "definition TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 0, "
                            "updated_at TEXT NOT NULL)");
    gk_sql_end(&req);
    ok = run("db_exec", &req, &res);
    if (ok) {
        gk_sql_begin(&req, "CREATE INDEX IF NOT EXISTS process_workflows_entity_idx "
                          "ON process_workflows (entity, active)");
        gk_sql_end(&req);
        ok = run("db_exec", &req, &res);
    }
    gk_buf_free(&req);
    gk_buf_free(&res);
    return ready = ok;
}

/* The first row of a db_query answer (an array of objects, or null) into
 * row. Returns 1 if there is one. */
static int first_row(const gk_buf *rows, gk_buf *row) {
    gk_json_iter it;
    gk_slice v;
    int type;
    gk_buf_reset(row);
    if (!gk_json_iter_begin(&it, rows->data, rows->len, '[') ||
        !gk_json_iter_next(&it, NULL, &v, &type) || type != GK_JSON_OBJECT)
        return 0;
    gk_buf_append(row, v.ptr, v.len);
    return !row->oom;
}

#define WORKFLOW_COLUMNS                                                                   \
    "SELECT id, name, entity, definition, active, updated_at FROM process_workflows"

/* Reads workflow `id` into row. Returns 1 if found, 0 if not, -1 when the
 * database failed (gk_last_error says why). */
static int load_workflow(int64_t id, gk_buf *row) {
    gk_buf req = GK_BUF_INIT, res = GK_BUF_INIT;
    int found = -1;
    gk_sql_begin(&req, WORKFLOW_COLUMNS " WHERE id = ?");
    gk_json_int(&req, id);
    gk_sql_end(&req);
    if (run("db_query", &req, &res)) found = first_row(&res, row);
    gk_buf_free(&req);
    gk_buf_free(&res);
    return found;
}

/* Parses the stored definition of a row into wf. Returns 0 when it does not
 * pass the checks (never for rows this plugin wrote). */
static int row_definition(const gk_buf *row, workflow *wf) {
    gk_buf def = GK_BUF_INIT;
    problems p = {GK_BUF_INIT, 0};
    if (gk_json_get_string(row->data, row->len, "definition", &def))
        parse_definition(def.data, def.len, wf, &p);
    else
        p.count = 1;
    gk_buf_free(&def);
    gk_buf_free(&p.items);
    return p.count == 0;
}

/* Stores a new workflow and sets *id. The id is MAX(id) + 1, read first and
 * then inserted: if another instance took the same id in between, the key
 * refuses the insert and the next id is tried. */
static int insert_workflow(const char *name, const char *entity, const gk_buf *def, int active,
                           int64_t *id) {
    gk_buf req = GK_BUF_INIT, res = GK_BUF_INIT, sql = GK_BUF_INIT;
    int attempt, ok = 0;
    gk_buf_append_cstr(&sql, "INSERT INTO process_workflows "
                             "(id, name, entity, definition, active, updated_at) "
                             "VALUES (?, ?, ?, ?, ?, ");
    gk_buf_append_cstr(&sql, now_sql());
    gk_buf_append_char(&sql, ')');
    for (attempt = 0; attempt < 5 && !ok; attempt++) {
        gk_sql_begin(&req, "SELECT COALESCE(MAX(id), 0) + 1 AS next FROM process_workflows");
        gk_sql_end(&req);
        if (!run("db_query", &req, &res)) break;
        {
            gk_buf row = GK_BUF_INIT;
            int have = first_row(&res, &row) && gk_json_get_int(row.data, row.len, "next", id);
            gk_buf_free(&row);
            if (!have) *id = 1;
        }
        gk_sql_begin(&req, sql.data);
        gk_json_int(&req, *id);
        gk_json_cstr(&req, name);
        gk_json_cstr(&req, entity);
        gk_json_string(&req, def->data, def->len);
        gk_json_int(&req, active ? 1 : 0);
        gk_sql_end(&req);
        ok = run("db_exec", &req, &res);
    }
    gk_buf_free(&req);
    gk_buf_free(&res);
    gk_buf_free(&sql);
    return ok;
}

/* Makes workflow id the only active one of its entity (on) or inactive. */
static int set_active(int64_t id, int on) {
    gk_buf req = GK_BUF_INIT, res = GK_BUF_INIT;
    int ok;
    if (on) {
        /* One statement: the others of the entity go off as this one goes on. */
        gk_sql_begin(&req, "UPDATE process_workflows "
                          "SET active = CASE WHEN id = ? THEN 1 ELSE 0 END "
                          "WHERE entity = (SELECT entity FROM process_workflows WHERE id = ?)");
        gk_json_int(&req, id);
        gk_json_int(&req, id);
    } else {
        gk_sql_begin(&req, "UPDATE process_workflows SET active = 0 WHERE id = ?");
        gk_json_int(&req, id);
    }
    gk_sql_end(&req);
    ok = run("db_exec", &req, &res);
    gk_buf_free(&req);
    gk_buf_free(&res);
    return ok;
}

/* After workflow id may have moved to another entity: if it is active, the
 * other active workflow of its (new) entity goes off, so one stays active. */
static int keep_one_active(int64_t id) {
    gk_buf req = GK_BUF_INIT, res = GK_BUF_INIT;
    int ok;
    gk_sql_begin(&req, "UPDATE process_workflows SET active = 0 "
                      "WHERE id <> ? AND active = 1 "
                      "AND entity = (SELECT entity FROM process_workflows WHERE id = ?) "
                      "AND EXISTS (SELECT 1 FROM process_workflows WHERE id = ? AND active = 1)");
    gk_json_int(&req, id);
    gk_json_int(&req, id);
    gk_json_int(&req, id);
    gk_sql_end(&req);
    ok = run("db_exec", &req, &res);
    gk_buf_free(&req);
    gk_buf_free(&res);
    return ok;
}

/* Replaces the definition (and the name, if given) of workflow id. */
static int update_workflow(int64_t id, const char *name, const gk_buf *def) {
    gk_buf req = GK_BUF_INIT, res = GK_BUF_INIT, sql = GK_BUF_INIT;
    int ok;
    gk_buf_append_cstr(&sql, "UPDATE process_workflows SET definition = ?, ");
    if (name) gk_buf_append_cstr(&sql, "name = ?, ");
    gk_buf_append_cstr(&sql, "updated_at = ");
    gk_buf_append_cstr(&sql, now_sql());
    gk_buf_append_cstr(&sql, " WHERE id = ?");
    gk_sql_begin(&req, sql.data);
    gk_json_string(&req, def->data, def->len);
    if (name) gk_json_cstr(&req, name);
    gk_json_int(&req, id);
    gk_sql_end(&req);
    ok = run("db_exec", &req, &res);
    gk_buf_free(&req);
    gk_buf_free(&res);
    gk_buf_free(&sql);
    return ok;
}

/* The active workflow of entity into row. 1 found, 0 none, -1 failure. */
static int load_active(const char *entity, gk_buf *row) {
    gk_buf req = GK_BUF_INIT, res = GK_BUF_INIT;
    int found = -1;
    gk_sql_begin(&req, WORKFLOW_COLUMNS " WHERE entity = ? AND active = 1 ORDER BY id LIMIT 1");
    gk_json_cstr(&req, entity);
    gk_sql_end(&req);
    if (run("db_query", &req, &res)) found = first_row(&res, row);
    gk_buf_free(&req);
    gk_buf_free(&res);
    return found;
}

/* ------------------------------------------------------------------------ */
/* Results                                                                  */
/* ------------------------------------------------------------------------ */

/* {"template": name, "context": <context>, "status": status}. */
static uint64_t return_template(const char *name, const gk_buf *context, int status) {
    gk_buf out = GK_BUF_INIT;
    gk_json_object_begin(&out);
    gk_json_key(&out, "template");
    gk_json_cstr(&out, name);
    gk_json_key(&out, "context");
    gk_json_raw(&out, context->data, context->len);
    gk_json_key(&out, "status");
    gk_json_int(&out, status);
    gk_json_object_end(&out);
    return gk_return_buf(&out);
}

/* A JSON body with a status, in the raw {"status","headers","body"} form. */
static uint64_t return_json_status(int status, const gk_buf *body) {
    gk_buf out = GK_BUF_INIT;
    gk_json_object_begin(&out);
    gk_json_key(&out, "status");
    gk_json_int(&out, status);
    gk_json_key(&out, "headers");
    gk_json_object_begin(&out);
    gk_json_key(&out, "content-type");
    gk_json_cstr(&out, "application/json");
    gk_json_object_end(&out);
    gk_json_key(&out, "body");
    gk_json_string(&out, body->data, body->len);
    gk_json_object_end(&out);
    return gk_return_buf(&out);
}

/* {"error": {"code", "message", "problems"?}} with a status, for the
 * designer's fetch(). */
static uint64_t return_json_error(int status, const char *code, const char *message_key,
                                  const problems *p) {
    gk_buf body = GK_BUF_INIT, message = GK_BUF_INIT;
    uint64_t r;
    char n[24];
    tr(&message, message_key, "n", int_text(n, p ? p->count : 0), NULL);
    gk_json_object_begin(&body);
    gk_json_key(&body, "error");
    gk_json_object_begin(&body);
    gk_json_key(&body, "code");
    gk_json_cstr(&body, code);
    gk_json_key(&body, "message");
    gk_json_string(&body, message.data, message.len);
    if (p) {
        gk_json_key(&body, "problems");
        write_problems(&body, p);
    }
    gk_json_object_end(&body);
    gk_json_object_end(&body);
    r = return_json_status(status, &body);
    gk_buf_free(&body);
    gk_buf_free(&message);
    return r;
}

/* The page for a workflow id that does not exist. */
static uint64_t return_not_found_page(int64_t id) {
    gk_buf ctx = GK_BUF_INIT;
    uint64_t r;
    gk_json_object_begin(&ctx);
    gk_json_key(&ctx, "id");
    gk_json_int(&ctx, id);
    gk_json_object_end(&ctx);
    r = return_template("not_found.html", &ctx, 404);
    gk_buf_free(&ctx);
    return r;
}

/* Copies the fields of a stored row into out as a workflow object:
 * {"id", "name", "entity", "active": bool, "updated_at", "definition": {...}}
 * (the definition re-serialised from wf, when asked for), and the counts
 * "states" and "transitions". */
static void write_workflow(gk_buf *out, const gk_buf *row, const workflow *wf,
                           int with_definition) {
    gk_slice v;
    int64_t n = 0;
    gk_json_object_begin(out);
    gk_json_key(out, "id");
    gk_json_get_int(row->data, row->len, "id", &n);
    gk_json_int(out, n);
    gk_json_key(out, "name");
    if (gk_json_find(row->data, row->len, "name", &v) == GK_JSON_STRING)
        gk_json_raw(out, v.ptr, v.len);
    else gk_json_cstr(out, "");
    gk_json_key(out, "entity");
    if (gk_json_find(row->data, row->len, "entity", &v) == GK_JSON_STRING)
        gk_json_raw(out, v.ptr, v.len);
    else gk_json_cstr(out, "");
    gk_json_key(out, "active");
    n = 0;
    gk_json_get_int(row->data, row->len, "active", &n);
    gk_json_bool(out, n != 0);
    gk_json_key(out, "updated_at");
    if (gk_json_find(row->data, row->len, "updated_at", &v) == GK_JSON_STRING)
        gk_json_raw(out, v.ptr, v.len);
    else gk_json_null(out);
    if (wf && with_definition) {
        gk_json_key(out, "definition");
        write_definition(out, wf);
    }
    if (wf) {
        gk_json_key(out, "states");
        gk_json_int(out, wf->nstates);
        gk_json_key(out, "transitions");
        gk_json_int(out, wf->ntransitions);
    }
    gk_json_object_end(out);
}

/* ------------------------------------------------------------------------ */
/* Route: GET /process (and POST /process/new with problems)                */
/* ------------------------------------------------------------------------ */

/* The list page: every workflow, and the "new workflow" form with the given
 * values and problems (p may be NULL). */
static uint64_t list_page(const char *name, const char *entity, const problems *p, int status) {
    gk_buf req = GK_BUF_INIT, rows = GK_BUF_INIT, ctx = GK_BUF_INIT, row = GK_BUF_INIT;
    gk_json_iter it;
    gk_slice v;
    int type;
    workflow *wf;
    uint64_t r;

    gk_sql_begin(&req, WORKFLOW_COLUMNS " ORDER BY entity, name, id");
    gk_sql_end(&req);
    if (!run("db_query", &req, &rows)) {
        gk_buf_free(&req);
        gk_buf_free(&rows);
        return return_host_error("listing workflows");
    }
    wf = (workflow *)malloc(sizeof *wf);
    if (!wf) __builtin_trap();
    gk_json_object_begin(&ctx);
    gk_json_key(&ctx, "workflows");
    gk_json_array_begin(&ctx);
    if (gk_json_iter_begin(&it, rows.data, rows.len, '[')) {
        while (gk_json_iter_next(&it, NULL, &v, &type)) {
            gk_buf_reset(&row);
            gk_buf_append(&row, v.ptr, v.len);
            write_workflow(&ctx, &row, row_definition(&row, wf) ? wf : NULL, 0);
        }
    }
    gk_json_array_end(&ctx);
    gk_json_key(&ctx, "form");
    gk_json_object_begin(&ctx);
    gk_json_key(&ctx, "name");
    gk_json_cstr(&ctx, name);
    gk_json_key(&ctx, "entity");
    gk_json_cstr(&ctx, entity);
    gk_json_object_end(&ctx);
    gk_json_key(&ctx, "problems");
    if (p) write_problems(&ctx, p);
    else gk_json_raw(&ctx, "[]", 2);
    gk_json_object_end(&ctx);
    r = return_template("list.html", &ctx, status);
    free(wf);
    gk_buf_free(&req);
    gk_buf_free(&rows);
    gk_buf_free(&ctx);
    gk_buf_free(&row);
    return r;
}

static uint64_t fn_list_page(void) {
    if (!ensure_tables()) return return_host_error("creating the tables");
    return list_page("", "ticket", NULL, 200);
}

/* ------------------------------------------------------------------------ */
/* Route: POST /process/new                                                 */
/* ------------------------------------------------------------------------ */

/* A starter definition for a new workflow, labels in the user's language:
 * new (initial) -> open -> closed, and closed -> open. */
static void starter_definition(gk_buf *out) {
    static const char *const ids[] = {"new", "open", "closed"};
    static const char *const labels[] = {"starter.new", "starter.open", "starter.closed"};
    static const int from[] = {0, 1, 2}, to[] = {1, 2, 1};
    static const char *const tlabels[] = {"starter.start", "starter.close", "starter.reopen"};
    workflow *wf = (workflow *)calloc(1, sizeof *wf);
    gk_buf text = GK_BUF_INIT;
    int i;
    if (!wf) __builtin_trap();
    for (i = 0; i < 3; i++) {
        wf_state *s = &wf->states[i];
        wf_transition *t = &wf->transitions[i];
        strcpy(s->id, ids[i]);
        tr(&text, labels[i], NULL);
        copy_label(s->label, &text);
        if (!s->label[0]) strcpy(s->label, ids[i]);
        s->x = 60 + 240 * i;
        s->y = 100;
        t->from = from[i];
        t->to = to[i];
        tr(&text, tlabels[i], NULL);
        copy_label(t->label, &text);
    }
    wf->nstates = 3;
    wf->ntransitions = 3;
    wf->initial = 0;
    write_definition(out, wf);
    gk_buf_free(&text);
    free(wf);
}

static uint64_t fn_create_workflow(const char *args, size_t len) {
    gk_buf name = GK_BUF_INIT, entity = GK_BUF_INIT, def = GK_BUF_INIT;
    problems p = {GK_BUF_INIT, 0};
    int64_t id = 0;
    uint64_t r;
    char location[48], num[24];

    if (!ensure_tables()) return return_host_error("creating the tables");
    gk_json_get_string(args, len, "name", &name);
    if (!gk_json_get_string(args, len, "entity", &entity)) gk_buf_append_cstr(&entity, "ticket");
    trim(&entity);
    check_name(&name, &p);
    check_entity(&entity, &p);
    if (p.count) {
        r = list_page(name.data ? name.data : "", entity.data ? entity.data : "", &p, 422);
    } else {
        starter_definition(&def);
        if (insert_workflow(name.data, entity.data, &def, 0, &id)) {
            /* From /process/new, "../process/<id>" is /process/<id> under any mount. */
            strcpy(location, "../process/");
            strcat(location, int_text(num, id));
            r = gk_return_redirect(location);
        } else
            r = return_host_error("creating a workflow");
    }
    gk_buf_free(&name);
    gk_buf_free(&entity);
    gk_buf_free(&def);
    gk_buf_free(&p.items);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Routes: GET /process/{id}, POST /process/{id}/save|activate|...          */
/* ------------------------------------------------------------------------ */

static uint64_t fn_designer_page(const char *args, size_t len) {
    gk_buf row = GK_BUF_INIT, ctx = GK_BUF_INIT;
    workflow *wf;
    int64_t id = 0;
    int found;
    uint64_t r;

    if (!ensure_tables()) return return_host_error("creating the tables");
    if (!gk_json_get_int(args, len, "id", &id)) return return_not_found_page(0);
    found = load_workflow(id, &row);
    if (found < 0) {
        gk_buf_free(&row);
        return return_host_error("reading a workflow");
    }
    if (!found) {
        gk_buf_free(&row);
        return return_not_found_page(id);
    }
    wf = (workflow *)malloc(sizeof *wf);
    if (!wf) __builtin_trap();
    gk_json_object_begin(&ctx);
    gk_json_key(&ctx, "workflow");
    write_workflow(&ctx, &row, row_definition(&row, wf) ? wf : NULL, 1);
    gk_json_object_end(&ctx);
    r = return_template("designer.html", &ctx, 200);
    free(wf);
    gk_buf_free(&row);
    gk_buf_free(&ctx);
    return r;
}

/* POST /process/{id}/save with the JSON body {"name"?, "definition": {...}}. */
static uint64_t fn_save_definition(const char *args, size_t len) {
    gk_buf row = GK_BUF_INIT, name = GK_BUF_INIT, def = GK_BUF_INIT, body = GK_BUF_INIT;
    problems p = {GK_BUF_INIT, 0};
    gk_slice v;
    workflow *wf = NULL;
    int64_t id = 0;
    int found = 0, type, has_name = 0;
    uint64_t r;

    /* The request as the host hands it over: the body's fields plus a few
     * short request fields, so this bounds the body. */
    if (len > MAX_BODY) return return_json_error(413, "too_large", "save.too_large", NULL);
    if (!ensure_tables()) return return_host_error("creating the tables");
    if (!gk_json_get_int(args, len, "id", &id) || (found = load_workflow(id, &row)) == 0) {
        gk_buf_free(&row);
        return return_json_error(404, "not_found", "save.not_found", NULL);
    }
    if (found < 0) {
        gk_buf_free(&row);
        return return_host_error("reading a workflow");
    }

    type = gk_json_find(args, len, "name", &v);
    if (type == GK_JSON_STRING) {
        gk_json_decode_string(v.ptr, v.len, &name);
        has_name = check_name(&name, &p);
    } else if (type != GK_JSON_MISSING && type != GK_JSON_NULL)
        problem(&p, "problem.name_type", NULL);

    type = gk_json_find(args, len, "definition", &v);
    if (type == GK_JSON_MISSING || type == GK_JSON_NULL)
        problem(&p, "problem.definition_missing", NULL);
    else if (type != GK_JSON_OBJECT) problem(&p, "problem.definition_type", NULL);
    else {
        wf = (workflow *)malloc(sizeof *wf);
        if (!wf) __builtin_trap();
        parse_definition(v.ptr, v.len, wf, &p);
    }

    if (p.count) {
        r = return_json_error(422, "invalid_workflow", "save.invalid", &p);
    } else {
        write_definition(&def, wf);
        if (!update_workflow(id, has_name ? name.data : NULL, &def)) {
            r = return_host_error("saving a workflow");
        } else {
            gk_json_object_begin(&body);
            gk_json_key(&body, "ok");
            gk_json_bool(&body, 1);
            gk_json_key(&body, "states");
            gk_json_int(&body, wf->nstates);
            gk_json_key(&body, "transitions");
            gk_json_int(&body, wf->ntransitions);
            gk_json_object_end(&body);
            r = return_json_status(200, &body);
        }
    }
    free(wf);
    gk_buf_free(&row);
    gk_buf_free(&name);
    gk_buf_free(&def);
    gk_buf_free(&body);
    gk_buf_free(&p.items);
    return r;
}

/* POST /process/{id}/activate, /deactivate and /delete: then back to the list. */
static uint64_t fn_change(const char *args, size_t len, const char *what) {
    gk_buf row = GK_BUF_INIT, req = GK_BUF_INIT, res = GK_BUF_INIT;
    int64_t id = 0;
    int found, ok;

    if (!ensure_tables()) return return_host_error("creating the tables");
    if (!gk_json_get_int(args, len, "id", &id)) return return_not_found_page(0);
    found = load_workflow(id, &row);
    gk_buf_free(&row);
    if (found < 0) return return_host_error("reading a workflow");
    if (!found) return return_not_found_page(id);
    if (strcmp(what, "delete") == 0) {
        gk_sql_begin(&req, "DELETE FROM process_workflows WHERE id = ?");
        gk_json_int(&req, id);
        gk_sql_end(&req);
        ok = run("db_exec", &req, &res);
    } else
        ok = set_active(id, strcmp(what, "activate") == 0);
    gk_buf_free(&req);
    gk_buf_free(&res);
    if (!ok) return return_host_error(what);
    /* From /process/<id>/<what>, "../../process" is /process under any mount. */
    return gk_return_redirect("../../process");
}

/* ------------------------------------------------------------------------ */
/* Hook: after_save                                                         */
/* ------------------------------------------------------------------------ */

/* {"ok": true, "workflow": name or null}. */
static uint64_t return_ok(const char *workflow_name) {
    gk_buf out = GK_BUF_INIT;
    gk_json_object_begin(&out);
    gk_json_key(&out, "ok");
    gk_json_bool(&out, 1);
    gk_json_key(&out, "workflow");
    gk_json_cstr(&out, workflow_name);
    gk_json_object_end(&out);
    return gk_return_buf(&out);
}

/* "Ticket 7": the entity with a capital letter, and the record's id if any. */
static void record_name(gk_buf *out, const char *entity, const char *args, size_t len) {
    gk_slice v;
    gk_buf id = GK_BUF_INIT;
    int type = gk_json_find(args, len, "id", &v);
    gk_buf_reset(out);
    gk_buf_append_cstr(out, entity);
    if (out->len && out->data[0] >= 'a' && out->data[0] <= 'z')
        out->data[0] = (char)(out->data[0] - 'a' + 'A');
    if (type == GK_JSON_NUMBER) {
        gk_buf_append_char(out, ' ');
        gk_buf_append(out, v.ptr, v.len);
    } else if (type == GK_JSON_STRING && gk_json_decode_string(v.ptr, v.len, &id) && id.len) {
        gk_buf show = GK_BUF_INIT;
        shown(&show, id.data, id.len, 0);
        gk_buf_append_char(out, ' ');
        gk_buf_append(out, show.data, show.len);
        gk_buf_free(&show);
    }
    gk_buf_free(&id);
}

/* Refuses the save: {"error": {"code": "illegal_transition", "message"}}. */
static uint64_t refuse(const char *key, ...) {
    gk_buf text = GK_BUF_INIT;
    va_list ap;
    uint64_t r;
    va_start(ap, key);
    tr_v(&text, key, ap);
    va_end(ap);
    r = gk_return_error("illegal_transition", text.data ? text.data : key);
    gk_buf_free(&text);
    return r;
}

/* The payload {"entity", "id", "state", "previous_state"?}: a save of a
 * record that moved from previous_state to state. */
static uint64_t fn_after_save(const char *args, size_t len) {
    gk_buf entity = GK_BUF_INIT, state = GK_BUF_INIT, prev = GK_BUF_INIT, row = GK_BUF_INIT,
           wname = GK_BUF_INIT, who = GK_BUF_INIT, list = GK_BUF_INIT, show = GK_BUF_INIT;
    workflow *wf = NULL;
    int found, to, from, i, has_prev;
    uint64_t r;

    if (!gk_json_get_string(args, len, "entity", &entity) ||
        !gk_json_get_string(args, len, "state", &state)) {
        r = return_ok(NULL); /* nothing this plugin can check */
        goto done;
    }
    has_prev = gk_json_get_string(args, len, "previous_state", &prev);
    /* If the workflow cannot be read the save goes through: a broken
     * database must not stop the host's work. It is logged. */
    if (!ensure_tables() || (found = load_active(entity.data, &row)) < 0) {
        gk_log_warn("after_save: the workflows could not be read; the save was not checked");
        r = return_ok(NULL);
        goto done;
    }
    wf = (workflow *)malloc(sizeof *wf);
    if (!wf) __builtin_trap();
    if (!found || !row_definition(&row, wf) ||
        !gk_json_get_string(row.data, row.len, "name", &wname)) {
        r = return_ok(NULL);
        goto done;
    }
    if (has_prev && prev.len == state.len && memcmp(prev.data, state.data, prev.len) == 0) {
        r = return_ok(wname.data); /* the state did not change: nothing to check */
        goto done;
    }
    record_name(&who, entity.data, args, len);
    to = find_state(wf, state.data, state.len);
    if (to < 0) {
        shown(&show, state.data, state.len, 0);
        r = refuse("hook.unknown_state", "record", who.data, "to", show.data, "workflow",
                   wname.data, NULL);
        goto done;
    }
    if (!has_prev || prev.len == 0) {
        /* A new record starts in the initial state. */
        if (to == wf->initial) r = return_ok(wname.data);
        else
            r = refuse("hook.must_start", "record", who.data, "to", wf->states[to].label,
                       "initial", wf->states[wf->initial].label, "workflow", wname.data, NULL);
        goto done;
    }
    from = find_state(wf, prev.data, prev.len);
    if (from < 0 || find_transition(wf, from, to) >= 0) {
        /* Along a transition, or entering the workflow from a state it does
         * not know (records older than the workflow). */
        r = return_ok(wname.data);
        goto done;
    }
    for (i = 0; i < wf->ntransitions; i++) {
        if (wf->transitions[i].from != from) continue;
        if (list.len) gk_buf_append_cstr(&list, ", ");
        gk_buf_append_char(&list, '"');
        gk_buf_append_cstr(&list, wf->states[wf->transitions[i].to].label);
        gk_buf_append_char(&list, '"');
    }
    if (list.len)
        r = refuse("hook.illegal", "record", who.data, "from", wf->states[from].label, "to",
                   wf->states[to].label, "workflow", wname.data, "allowed", list.data, NULL);
    else
        r = refuse("hook.illegal_none", "record", who.data, "from", wf->states[from].label, "to",
                   wf->states[to].label, "workflow", wname.data, NULL);
done:
    free(wf);
    gk_buf_free(&entity);
    gk_buf_free(&state);
    gk_buf_free(&prev);
    gk_buf_free(&row);
    gk_buf_free(&wname);
    gk_buf_free(&who);
    gk_buf_free(&list);
    gk_buf_free(&show);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Template functions                                                       */
/* ------------------------------------------------------------------------ */

/* allowed_transitions(entity, state): where a record may go from state.
 * {"workflow": name, "any": false, "current": {id, label} or null,
 *  "states": [{id, label}]}: the targets of state's transitions; the initial
 * state for a new record (no state); every state for a state the workflow
 * does not know. Without an active workflow: {"workflow": null, "any": true,
 * "current": null, "states": []}: the host offers its own full list. */
static uint64_t fn_allowed_transitions(const char *args, size_t len) {
    gk_buf entity = GK_BUF_INIT, state = GK_BUF_INIT, row = GK_BUF_INIT, out = GK_BUF_INIT,
           wname = GK_BUF_INIT;
    workflow *wf = NULL;
    int found = 0, from = -1, i;

    if (!gk_json_get_string(args, len, "entity", &entity)) {
        gk_buf_free(&entity);
        return gk_return_error("bad_input", "allowed_transitions needs a string entity");
    }
    gk_json_get_string(args, len, "state", &state);
    if (!ensure_tables() || (found = load_active(entity.data, &row)) < 0) {
        gk_buf_free(&entity);
        gk_buf_free(&state);
        gk_buf_free(&row);
        return return_host_error("reading the active workflow");
    }
    if (found) {
        wf = (workflow *)malloc(sizeof *wf);
        if (!wf) __builtin_trap();
        found = row_definition(&row, wf) && gk_json_get_string(row.data, row.len, "name", &wname);
    }
    gk_json_object_begin(&out);
    gk_json_key(&out, "workflow");
    if (found) gk_json_string(&out, wname.data, wname.len);
    else gk_json_null(&out);
    gk_json_key(&out, "any");
    gk_json_bool(&out, !found);
    gk_json_key(&out, "current");
    if (found && state.len) from = find_state(wf, state.data, state.len);
    if (from >= 0) write_state_ref(&out, wf, from);
    else gk_json_null(&out);
    gk_json_key(&out, "states");
    gk_json_array_begin(&out);
    if (found) {
        if (!state.len) write_state_ref(&out, wf, wf->initial);
        else if (from < 0) {
            for (i = 0; i < wf->nstates; i++) write_state_ref(&out, wf, i);
        } else {
            for (i = 0; i < wf->ntransitions; i++)
                if (wf->transitions[i].from == from)
                    write_state_ref(&out, wf, wf->transitions[i].to);
        }
    }
    gk_json_array_end(&out);
    gk_json_object_end(&out);
    free(wf);
    gk_buf_free(&entity);
    gk_buf_free(&state);
    gk_buf_free(&row);
    gk_buf_free(&wname);
    return gk_return_buf(&out);
}

/* save_workflow({name, entity, definition, active?, id?}) -> {"id"}: creates
 * a workflow, or replaces workflow id (its name, entity and definition).
 * active: true makes it the entity's active workflow; false leaves a new
 * one inactive and switches an existing one off. */
static uint64_t fn_save_workflow(const char *args, size_t len) {
    gk_buf name = GK_BUF_INIT, entity = GK_BUF_INIT, def = GK_BUF_INIT, row = GK_BUF_INIT,
           req = GK_BUF_INIT, res = GK_BUF_INIT, out = GK_BUF_INIT;
    problems p = {GK_BUF_INIT, 0};
    gk_slice v;
    workflow *wf = NULL;
    int64_t id = 0, num = 0;
    int type, active = 0, has_active = 0, has_id, ok = 1;
    uint64_t r;

    if (!ensure_tables()) return return_host_error("creating the tables");
    has_id = gk_json_find(args, len, "id", &v) > GK_JSON_NULL;
    if (has_id && !gk_json_get_int(args, len, "id", &id)) {
        return gk_return_error("bad_input", "save_workflow: id must be a whole number");
    }
    if (has_id) {
        int found = load_workflow(id, &row);
        gk_buf_free(&row);
        if (found < 0) return return_host_error("reading a workflow");
        if (!found) return gk_return_error("not_found", "save_workflow: no workflow with that id");
    }
    if (!gk_json_get_string(args, len, "name", &name)) gk_buf_reset(&name);
    check_name(&name, &p);
    if (!gk_json_get_string(args, len, "entity", &entity)) gk_buf_reset(&entity);
    check_entity(&entity, &p);
    type = gk_json_find(args, len, "definition", &v);
    if (type == GK_JSON_MISSING || type == GK_JSON_NULL)
        problem(&p, "problem.definition_missing", NULL);
    else if (type != GK_JSON_OBJECT) problem(&p, "problem.definition_type", NULL);
    else if (v.len > MAX_BODY) problem(&p, "problem.definition_too_large", NULL);
    else {
        wf = (workflow *)malloc(sizeof *wf);
        if (!wf) __builtin_trap();
        parse_definition(v.ptr, v.len, wf, &p);
    }
    if (gk_json_get_bool(args, len, "active", &active)) has_active = 1;
    else if (gk_json_get_int(args, len, "active", &num)) {
        has_active = 1;
        active = num != 0;
    }
    if (p.count) {
        gk_buf message = GK_BUF_INIT;
        char n[24];
        tr(&message, "save.invalid", "n", int_text(n, p.count), NULL);
        gk_buf_append_char(&message, ' ');
        join_problems(&message, &p);
        r = gk_return_error("invalid_workflow", message.data);
        gk_buf_free(&message);
        goto done;
    }
    write_definition(&def, wf);
    if (has_id) {
        gk_sql_begin(&req, "UPDATE process_workflows SET entity = ? WHERE id = ?");
        gk_json_string(&req, entity.data, entity.len);
        gk_json_int(&req, id);
        gk_sql_end(&req);
        ok = run("db_exec", &req, &res) && update_workflow(id, name.data, &def);
    } else
        ok = insert_workflow(name.data, entity.data, &def, 0, &id);
    if (ok && (has_active || !has_id)) ok = set_active(id, active);
    else if (ok) ok = keep_one_active(id);
    if (!ok) {
        r = return_host_error("saving a workflow");
        goto done;
    }
    gk_json_object_begin(&out);
    gk_json_key(&out, "id");
    gk_json_int(&out, id);
    gk_json_object_end(&out);
    r = gk_return_buf(&out);
done:
    free(wf);
    gk_buf_free(&name);
    gk_buf_free(&entity);
    gk_buf_free(&def);
    gk_buf_free(&req);
    gk_buf_free(&res);
    gk_buf_free(&out);
    gk_buf_free(&p.items);
    return r;
}

/* get_workflow(id) -> {"id", "name", "entity", "active", "updated_at",
 * "definition", "states", "transitions"}; not_found for an unknown id. */
static uint64_t fn_get_workflow(const char *args, size_t len) {
    gk_buf row = GK_BUF_INIT, out = GK_BUF_INIT;
    workflow *wf;
    int64_t id = 0;
    int found;

    if (!gk_json_get_int(args, len, "id", &id))
        return gk_return_error("bad_input", "get_workflow needs a whole number id");
    if (!ensure_tables()) return return_host_error("creating the tables");
    found = load_workflow(id, &row);
    if (found < 0) {
        gk_buf_free(&row);
        return return_host_error("reading a workflow");
    }
    if (!found) {
        gk_buf_free(&row);
        return gk_return_error("not_found", "get_workflow: no workflow with that id");
    }
    wf = (workflow *)malloc(sizeof *wf);
    if (!wf) __builtin_trap();
    write_workflow(&out, &row, row_definition(&row, wf) ? wf : NULL, 1);
    free(wf);
    gk_buf_free(&row);
    return gk_return_buf(&out);
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                 */
/* ------------------------------------------------------------------------ */

uint64_t gk_call(const char *fn, size_t fn_len, const char *args, size_t args_len) {
    if (!args) {
        args = "{}";
        args_len = 2;
    }
    if (gk_fn_is(fn, fn_len, "after_save")) return fn_after_save(args, args_len);
    if (gk_fn_is(fn, fn_len, "allowed_transitions")) return fn_allowed_transitions(args, args_len);
    if (gk_fn_is(fn, fn_len, "save_workflow")) return fn_save_workflow(args, args_len);
    if (gk_fn_is(fn, fn_len, "get_workflow")) return fn_get_workflow(args, args_len);
    if (gk_fn_is(fn, fn_len, "list_page")) return fn_list_page();
    if (gk_fn_is(fn, fn_len, "create_workflow")) return fn_create_workflow(args, args_len);
    if (gk_fn_is(fn, fn_len, "designer_page")) return fn_designer_page(args, args_len);
    if (gk_fn_is(fn, fn_len, "save_definition")) return fn_save_definition(args, args_len);
    if (gk_fn_is(fn, fn_len, "activate")) return fn_change(args, args_len, "activate");
    if (gk_fn_is(fn, fn_len, "deactivate")) return fn_change(args, args_len, "deactivate");
    if (gk_fn_is(fn, fn_len, "delete_workflow")) return fn_change(args, args_len, "delete");
    return gk_return_error("unknown_function", "process has no such function");
}
